/*
 * hlc.c: the hybrid logical clock (Kulkarni et al., "Logical Physical Clocks
 * and Consistent Snapshots in Globally Distributed Databases", 2014).
 *
 * A timestamp packs physical ms and a logical counter so that comparing two
 * timestamps is comparing two integers. Issuing a timestamp takes the larger
 * of the physical clock and the last timestamp plus one; if the counter is
 * full, plus one carries into the milliseconds, which stays monotonic and
 * costs at most a millisecond of drift per 65,536 events in one millisecond.
 */
#include "crdt/crdt.h"

static crdt_hlc
crdt__hlc_after(crdt_hlc floor, uint64_t phys_ms)
{
	crdt_hlc phys = CRDT_HLC_AT(phys_ms);

	if (phys > floor)
		return phys;
	/* The end of time (year 10889) holds rather than wrapping to 0. */
	return floor == UINT64_MAX ? floor : floor + 1;
}

crdt_hlc
crdt_clock_tick(crdt_clock *c, uint64_t phys_ms)
{
	c->last = crdt__hlc_after(c->last, phys_ms);
	return c->last;
}

revokd_err
crdt_clock_recv(crdt_clock *c, uint64_t phys_ms, crdt_hlc remote,
    uint64_t max_ahead_ms, crdt_hlc *out)
{
	revokd_err err = REVOKD_OK;
	crdt_hlc floor = c->last;

	/* Written to avoid overflow for any max_ahead_ms, UINT64_MAX too. */
	if (CRDT_HLC_MS(remote) > phys_ms &&
	    CRDT_HLC_MS(remote) - phys_ms > max_ahead_ms)
		err = REVOKD_ECLOCK;
	else if (remote > floor)
		floor = remote;
	c->last = crdt__hlc_after(floor, phys_ms);
	*out = c->last;
	return err;
}
