/*
 * latency.c: the regions a run can use and the latency between them.
 */
#include "sim/sim.h"

static const char *const sim__regions[SIM_REGIONS] = {
	"us-east-1",
	"us-west-2",
	"eu-west-1",
	"eu-central-1",
	"ap-southeast-1",
	"ap-northeast-1",
	"sa-east-1",
};

/*
 * Round-trip times in milliseconds, p50, rounded to 5 ms, between the AWS
 * regions above, from the CloudPing inter-region latency grid
 * (https://www.cloudping.co/grid, source at github.com/mda590/cloudping.co:
 * TCP round trips measured between every pair of regions every 6 hours).
 * The simulator uses half of each as the one-way delay; jitter is added
 * per frame on top.
 */
static const unsigned sim__rtt_ms[SIM_REGIONS][SIM_REGIONS] = {
	/*          use1 usw2 euw1 euc1 apse1 apne1 sae1 */
	/* use1 */ { 0, 65, 70, 90, 215, 145, 115 },
	/* usw2 */ { 65, 0, 125, 140, 165, 100, 175 },
	/* euw1 */ { 70, 125, 0, 25, 170, 205, 180 },
	/* euc1 */ { 90, 140, 25, 0, 155, 225, 200 },
	/* apse1 */ { 215, 165, 170, 155, 0, 70, 330 },
	/* apne1 */ { 145, 100, 205, 225, 70, 0, 255 },
	/* sae1 */ { 115, 175, 180, 200, 330, 255, 0 },
};

const char *
sim_region_name(unsigned i)
{
	return i < SIM_REGIONS ? sim__regions[i] : "?";
}

uint64_t
sim_one_way_us(unsigned a, unsigned b)
{
	if (a >= SIM_REGIONS || b >= SIM_REGIONS)
		return 50 * SIM_MS;
	return (uint64_t)sim__rtt_ms[a][b] * SIM_MS / 2;
}
