/*
 * revokd_file.c: files that must be private to their owner (the cluster
 * secret, private keys), checked and read.
 */
#include "common/revokd.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What kind of file mode says, for "not a regular file" messages. */
static const char *
revokd__file_kind(mode_t mode)
{
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISSOCK(mode))
		return "a socket";
	if (S_ISCHR(mode) || S_ISBLK(mode))
		return "a device";
	return "not a regular file";
}

/* A failed stat or open of path, with errno errnum. */
static revokd_err
revokd__file_error(const char *path, int errnum, char *err, size_t err_len)
{
	revokd_errf(err, err_len, "%s: %s", path, strerror(errnum));
	return errnum == ENOENT || errnum == ENOTDIR ? REVOKD_ENOTFOUND
	                                             : REVOKD_EIO;
}

/* st, path's, is a regular file with no group or other permission bits. */
static revokd_err
revokd__private_stat(const char *path, const struct stat *st, char *err,
    size_t err_len)
{
	unsigned mode = (unsigned)st->st_mode & 07777;

	if (!S_ISREG(st->st_mode)) {
		revokd_errf(err, err_len, "%s: %s: want a regular file", path,
		    revokd__file_kind(st->st_mode));
		return REVOKD_EIO;
	}
	if ((mode & 077) == 0)
		return REVOKD_OK;
	revokd_errf(err, err_len,
	    "%s: mode %04o: must not be %s by group or others (chmod 600)",
	    path, mode, mode & 044 ? "readable" : "accessible");
	return REVOKD_EPERM;
}

revokd_err
revokd_private_file_check(const char *path, char *err, size_t err_len)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return revokd__file_error(path, errno, err, err_len);
	return revokd__private_stat(path, &st, err, err_len);
}

/* Read up to len bytes, until the end of the file: how many, or -1. */
static ssize_t
revokd__read_up_to(int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/*
 * The secret is checked on the descriptor it is read from (fstat), so the
 * file checked is the file read. One byte more than wanted is asked for, to
 * tell a long file from a right one.
 */
revokd_err
revokd_secret_load(const char *path, uint8_t *secret, size_t len, char *err,
    size_t err_len)
{
	uint8_t buf[REVOKD_SECRET_MAX + 1];
	struct stat st;
	revokd_err rc;
	ssize_t n = 0;
	int fd;

	if (len > REVOKD_SECRET_MAX)
		return REVOKD_EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return revokd__file_error(path, errno, err, err_len);
	if (fstat(fd, &st) != 0) {
		rc = revokd__file_error(path, errno, err, err_len);
		goto out;
	}
	if ((rc = revokd__private_stat(path, &st, err, err_len)) != REVOKD_OK)
		goto out;
	if ((n = revokd__read_up_to(fd, buf, sizeof(buf))) < 0) {
		rc = revokd__file_error(path, errno, err, err_len);
		goto out;
	}
	if ((size_t)n != len) {
		revokd_errf(err, err_len, "%s: %jd bytes, want %zu", path,
		    (intmax_t)((size_t)n > len && st.st_size > n ? st.st_size
		                                                 : n),
		    len);
		rc = REVOKD_ECONFIG;
		goto out;
	}
	memcpy(secret, buf, len);
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	close(fd);
	return rc;
}
