/*
 * revoke-check.c: librevoke from a verifier's side, in one page.
 *
 *   revoke-check SOCKET JTI [SUB VER]
 *   revoke-check --reader DATA_DIR SECRET_FILE JTI [SUB VER]
 *
 * Asks the local revokd whether a token is still good, over the query
 * socket or straight from the agent's store, and prints the verdict.
 * Exit 0: valid; 1: revoked; 2: usage; 3: the check could not run.
 *
 * Build against the installed library:
 *   cc revoke-check.c $(pkg-config --cflags --libs librevoke) -o revoke-check
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <revoke.h>

int
main(int argc, char **argv)
{
	revoke_query q = { 0 };
	revoke_answer a;
	revoke_client *client = NULL;
	revoke_reader *reader = NULL;
	revoke_status st;
	int arg;

	if (argc >= 5 && strcmp(argv[1], "--reader") == 0) {
		st = revoke_reader_open(argv[2], argv[3], &reader);
		arg = 4;
	} else if (argc >= 3 && argv[1][0] != '-') {
		st = revoke_client_open(argv[1], NULL, &client);
		arg = 2;
	} else {
		fprintf(stderr, "usage: revoke-check SOCKET JTI [SUB VER]\n"
		                "       revoke-check --reader DATA_DIR "
		                "SECRET_FILE JTI [SUB VER]\n");
		return 2;
	}
	if (st != REVOKE_OK) {
		fprintf(stderr, "revoke-check: %s\n", revoke_strerror(st));
		return 3;
	}

	q.jti = argv[arg];
	if (argc == arg + 3) {
		q.sub = argv[arg + 1];
		q.has_ver = true;
		q.ver = strtoull(argv[arg + 2], NULL, 10);
	}
	st = client ? revoke_client_check(client, &q, &a)
	            : revoke_reader_check(reader, &q, &a);
	revoke_client_close(client);
	revoke_reader_close(reader);
	if (st != REVOKE_OK) {
		fprintf(stderr, "revoke-check: %s\n", revoke_strerror(st));
		return 3;
	}
	printf("%s (version %llu, staleness %llu ms)\n",
	    revoke_verdict_name(a.verdict), (unsigned long long)a.version,
	    (unsigned long long)a.staleness_ms);
	return a.verdict == REVOKE_VALID ? 0 : 1;
}
