/* Fault injection for the crash and fault tests (tests/faults.rs), loaded with LD_PRELOAD into
 * the keyringrs CLI. KEYRINGRS_FAULT selects one fault; file descriptors 0-2 are never touched.
 *   write-eio            write(2) and pwrite(2) to a file fail with EIO
 *   fsync-eio            fsync(2) and fdatasync(2) fail with EIO
 *   crash-before-rename  renameat(2) aborts the process (a crash between fsync and rename) */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fault_is(const char *name)
{
	const char *f = getenv("KEYRINGRS_FAULT");
	return f && strcmp(f, name) == 0;
}

ssize_t write(int fd, const void *buf, size_t n)
{
	static ssize_t (*real)(int, const void *, size_t);
	if (fd > 2 && fault_is("write-eio")) {
		errno = EIO;
		return -1;
	}
	if (!real)
		real = dlsym(RTLD_NEXT, "write");
	return real(fd, buf, n);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	static ssize_t (*real)(int, const void *, size_t, off_t);
	if (fd > 2 && fault_is("write-eio")) {
		errno = EIO;
		return -1;
	}
	if (!real)
		real = dlsym(RTLD_NEXT, "pwrite64");
	return real(fd, buf, n, off);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	return pwrite64(fd, buf, n, off);
}

int fdatasync(int fd)
{
	static int (*real)(int);
	if (fd > 2 && fault_is("fsync-eio")) {
		errno = EIO;
		return -1;
	}
	if (!real)
		real = dlsym(RTLD_NEXT, "fdatasync");
	return real(fd);
}

int fsync(int fd)
{
	static int (*real)(int);
	if (fd > 2 && fault_is("fsync-eio")) {
		errno = EIO;
		return -1;
	}
	if (!real)
		real = dlsym(RTLD_NEXT, "fsync");
	return real(fd);
}

int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)
{
	static int (*real)(int, const char *, int, const char *);
	if (fault_is("crash-before-rename"))
		abort();
	if (!real)
		real = dlsym(RTLD_NEXT, "renameat");
	return real(olddirfd, oldpath, newdirfd, newpath);
}
