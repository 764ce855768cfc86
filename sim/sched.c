/*
 * sched.c: the event queue, a binary min-heap keyed by (time, sequence).
 * The sequence number is the order of insertion, so events at the same
 * time run in the order they were scheduled: the run never depends on how
 * the heap happens to break ties.
 */
#include "sim/sim.h"

#include <stdlib.h>
#include <string.h>

void
sim_sched_init(sim_sched *q)
{
	memset(q, 0, sizeof(*q));
}

void
sim_sched_free(sim_sched *q)
{
	for (size_t i = 0; i < q->n; i++)
		free(q->heap[i].data);
	free(q->heap);
	memset(q, 0, sizeof(*q));
}

static bool
sim__before(const sim_event *a, const sim_event *b)
{
	return a->time != b->time ? a->time < b->time : a->seq < b->seq;
}

static void
sim__swap(sim_event *a, sim_event *b)
{
	sim_event t = *a;

	*a = *b;
	*b = t;
}

static void
sim__sift_up(sim_sched *q, size_t i)
{
	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!sim__before(&q->heap[i], &q->heap[parent]))
			return;
		sim__swap(&q->heap[i], &q->heap[parent]);
		i = parent;
	}
}

static void
sim__sift_down(sim_sched *q, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, min = i;

		if (l < q->n && sim__before(&q->heap[l], &q->heap[min]))
			min = l;
		if (r < q->n && sim__before(&q->heap[r], &q->heap[min]))
			min = r;
		if (min == i)
			return;
		sim__swap(&q->heap[i], &q->heap[min]);
		i = min;
	}
}

revokd_err
sim_sched_push(sim_sched *q, const sim_event *ev)
{
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 1024;
		sim_event *heap = realloc(q->heap, cap * sizeof(*heap));

		if (heap == NULL)
			return REVOKD_ENOMEM;
		q->heap = heap;
		q->cap = cap;
	}
	q->heap[q->n] = *ev;
	q->heap[q->n].seq = q->next_seq++;
	sim__sift_up(q, q->n++);
	return REVOKD_OK;
}

bool
sim_sched_pop(sim_sched *q, sim_event *out)
{
	if (q->n == 0)
		return false;
	*out = q->heap[0];
	q->heap[0] = q->heap[--q->n];
	sim__sift_down(q, 0);
	return true;
}
