/* Editing the rate card: its rules (one per scope), its default markup and the
 * plan each tenant is on, each write one transaction that bumps the card's
 * revision; and reading it as VoiceGateway's billing API shows it. Used by
 * the HTTP endpoints (rate_card_http.c) and `vgcollector prices`. */
#ifndef VGC_RATE_CARD_ADMIN_H
#define VGC_RATE_CARD_ADMIN_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

#define RATE_CARD_TEXT_MAX 200 /* bytes of a scope value (tenant, plan, model, ...) */
#define RATE_CARD_DECIMAL_MAX 40

/* One rule as written: its scope (NULL: any) and exactly one kind. Strings
 * point into the caller's (cJSON tree, argv). */
struct rate_rule {
	const char *tenant, *plan, *modality, *provider, *model;
	char markup[RATE_CARD_DECIMAL_MAX + 1]; /* "" unless cost_plus */
	const char *basis;			/* cost_plus: "book" or "recorded" (NULL) */
	char fixed[RATE_CARD_DECIMAL_MAX + 1];	/* "" unless fixed */
	const char *unit;			/* fixed's */
};

/* A decimal >= 0 as text ("1.3", "0.00005"): no sign, no exponent. False
 * with err naming field. */
bool rate_card_decimal(const char *field, const char *text, char out[RATE_CARD_DECIMAL_MAX + 1],
		       char *err, size_t errlen) __attribute__((warn_unused_result));

/* A scope value (tenant, plan, provider, model): 1..RATE_CARD_TEXT_MAX bytes
 * of UTF-8 without control characters. False with err naming field. */
bool rate_card_text(const char *field, const char *text, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The rule's fields together: exactly one of markup and fixed, a known unit
 * with fixed (and only then), basis only with markup, a known modality.
 * False with err naming the field. */
bool rate_rule_check(const struct rate_rule *r, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The card as GET /v1/billing/rate-card answers it (rules_only: as
 * GET /v1/billing/rate-card/rules does) into out. 200, or 503/500 with err. */
int rate_card_render(PGconn *conn, bool rules_only, struct buf *out, char *err, size_t errlen);

/* The writes. expected_revision < 0: none; else 409 when the card is at
 * another revision. *revision gets the card's revision after the write.
 * Each returns 200 (201 for a rule created), 404 (rm: no such rule), 409,
 * or 503/500 with err. */
int rate_card_rule_put(PGconn *conn, const struct rate_rule *r, long long expected_revision,
		       long long *rule_id, long long *revision, char *err, size_t errlen);
int rate_card_rule_rm(PGconn *conn, long long rule_id, long long expected_revision,
		      long long *revision, char *err, size_t errlen);
int rate_card_default_set(PGconn *conn, const char *markup, long long expected_revision,
			  long long *revision, char *err, size_t errlen);
/* plan NULL: the tenant is on no plan. */
int rate_card_plan_set(PGconn *conn, const char *tenant, const char *plan,
		       long long expected_revision, long long *revision, char *err, size_t errlen);

#endif
