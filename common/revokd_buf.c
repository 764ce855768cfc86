/*
 * revokd_buf.c: the growable byte buffer.
 */
#include "common/revokd.h"

#include <stdlib.h>
#include <string.h>

revokd_err
revokd_buf_reserve(revokd_buf *b, size_t len)
{
	size_t cap = b->cap ? b->cap : 256;
	uint8_t *data;

	if (len <= b->cap - b->len)
		return REVOKD_OK;
	if (len > SIZE_MAX / 2 - b->len)
		return REVOKD_ENOMEM;
	while (cap - b->len < len)
		cap *= 2;
	if ((data = realloc(b->data, cap)) == NULL)
		return REVOKD_ENOMEM;
	b->data = data;
	b->cap = cap;
	return REVOKD_OK;
}

revokd_err
revokd_buf_append(revokd_buf *b, const void *data, size_t len)
{
	revokd_err err = revokd_buf_reserve(b, len);

	if (err != REVOKD_OK)
		return err;
	if (len > 0)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	return REVOKD_OK;
}

void
revokd_buf_consume(revokd_buf *b, size_t len)
{
	if (len >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + len, b->len - len);
	b->len -= len;
}

void
revokd_buf_free(revokd_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}
