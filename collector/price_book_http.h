/* The price book's HTTP endpoints (see price_book.h). */
#ifndef VGC_PRICE_BOOK_HTTP_H
#define VGC_PRICE_BOOK_HTTP_H

struct http_req;

/* POST /v1/billing/price-book: admin; answers {"revision","created"}. */
void price_book_http_import(struct http_req *hr);

#endif
