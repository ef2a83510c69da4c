/* The rate card's HTTP endpoints, VoiceGateway's billing API (see
 * rate_card_admin.h). Every one takes an unscoped key: markups are operator
 * information, so a tenant- or project-scoped key gets 403. */
#ifndef VGC_RATE_CARD_HTTP_H
#define VGC_RATE_CARD_HTTP_H

struct http_req;

/* GET /v1/billing/rate-card (read or admin): the card; PUT (admin):
 * {"default_markup", "expected_revision"?}. */
void rate_card_http_card(struct http_req *hr);
/* GET /v1/billing/rate-card/rules (read or admin): the rules with their ids;
 * POST (admin): upsert one rule by scope, {"rule_id","created","revision"}. */
void rate_card_http_rules(struct http_req *hr);
/* DELETE /v1/billing/rate-card/rules/{rule_id}[?expected_revision=N] (admin). */
void rate_card_http_rule_rm(struct http_req *hr);
/* PUT /v1/billing/plans/{tenant} (admin): {"plan": P or null,
 * "expected_revision"?}. */
void rate_card_http_plan(struct http_req *hr);

#endif
