/* sys.c — see sys.h. */
#include "sys.h"

#include <errno.h>       // defines: errno, EEXIST
#include <fcntl.h>       // defines: open, fcntl, O_RDONLY, O_NONBLOCK, O_DIRECTORY, O_CREAT
#include <glob.h>        // defines: glob, globfree
#include <string.h>      // defines: strerror, strrchr, memset
#include <sys/stat.h>    // defines: mkdir, stat, fstat, S_ISDIR, S_ISREG, S_ISFIFO, S_ISSOCK
#include <sys/statvfs.h> // defines: statvfs
#include <time.h>        // defines: clock_gettime, CLOCK_MONOTONIC
#include <unistd.h>      // defines: fsync, close, unlink, getpid, write

double sn_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

uint64_t sn_hash_bytes(const void *p, size_t n, uint64_t h)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

uint64_t sn_hash_str(const char *s, uint64_t h) { return sn_hash_bytes(s, strlen(s) + 1, h); }

int sn_mkdir_p(const char *dir, const char *what, struct sn_err *err)
{
    char path[1024];
    SN_RETURN_IF(snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path, err, SN_EINVAL,
                 "%s: path of the %s too long", dir, what);
    for (char *p = path + 1;; p++) {
        int end = *p == '\0';
        if (*p == '/' || end) {
            *p = '\0';
            struct stat st;
            if (mkdir(path, 0755) != 0 && errno != EEXIST)
                return sn_err_set(err, SN_EIO, "%s: cannot create the %s: %s", path, what,
                                  strerror(errno));
            if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode))
                return sn_err_set(err, SN_EIO, "%s: the %s %s is a file, not a directory", path,
                                  what, dir);
            if (end)
                break;
            *p = '/';
        }
    }
    return SN_OK;
}

/* Bytes written by the probe: enough to meet a file system with no room left. */
#define PROBE_BYTES 65536

int sn_probe_dir(const char *dir, const char *what, uint64_t need, struct sn_err *err)
{
    SN_FORWARD(sn_mkdir_p(dir, what, err));
    char probe[1100];
    snprintf(probe, sizeof probe, "%s/.shardnet-probe.%ld", dir, (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return sn_err_set(err, SN_EIO, "%s: cannot create files in the %s: %s", dir, what,
                          strerror(errno));
    static const char zeros[4096];
    int e = 0;
    for (int done = 0; done < PROBE_BYTES && e == 0; done += (int)sizeof zeros)
        if (write(fd, zeros, sizeof zeros) != (ssize_t)sizeof zeros)
            e = errno ? errno : ENOSPC;
    if (e == 0 && fsync(fd) != 0)
        e = errno;
    close(fd);
    unlink(probe);
    if (e != 0)
        return sn_err_set(err, SN_EIO, "%s: cannot write to the %s: %s", dir, what, strerror(e));
    uint64_t free_bytes = sn_free_bytes(dir);
    if (free_bytes < need)
        return sn_err_set(err, SN_EIO,
                          "%s: the %s has %.1f MB free, the run's files need about %.1f MB",
                          dir, what, (double)free_bytes / 1e6, need / 1e6);
    return SN_OK;
}

uint64_t sn_free_bytes(const char *dir)
{
    struct statvfs vs;
    if (statvfs(dir, &vs) != 0)
        return UINT64_MAX;
    return (uint64_t)vs.f_bavail * vs.f_frsize;
}

const char *sn_file_kind(unsigned mode)
{
    mode_t m = (mode_t)mode;
    return S_ISFIFO(m)  ? "a FIFO"
           : S_ISDIR(m) ? "a directory"
           : S_ISSOCK(m) ? "a socket"
           : S_ISCHR(m) ? "a character device"
           : S_ISBLK(m) ? "a block device"
           : S_ISREG(m) ? "a regular file"
                        : "a file of an unknown kind";
}

static int not_regular(const char *path, const char *what, unsigned mode, struct sn_err *err)
{
    return sn_err_set(err, SN_EFORMAT, "%s: the %s is %s, not a regular file", path, what,
                      sn_file_kind(mode));
}

int sn_open_regular(const char *path, const char *what, int *fd, struct sn_err *err)
{
    *fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (*fd < 0) {
        int e = errno;
        struct stat st;
        /* a socket cannot be opened at all (ENXIO): say what it is */
        if (e == ENXIO && stat(path, &st) == 0 && !S_ISREG(st.st_mode))
            return not_regular(path, what, st.st_mode, err);
        sn_err_set(err, SN_EIO, "%s: cannot open %s: %s", path, what, strerror(e));
        errno = e;
        return SN_EIO;
    }
    struct stat st;
    int rc = SN_OK;
    if (fstat(*fd, &st) != 0)
        rc = sn_err_set(err, SN_EIO, "%s: cannot stat %s: %s", path, what, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = not_regular(path, what, st.st_mode, err);
    else {
        int fl = fcntl(*fd, F_GETFL);
        if (fl == -1 || fcntl(*fd, F_SETFL, fl & ~O_NONBLOCK) != 0)
            rc = sn_err_set(err, SN_EIO, "%s: cannot read %s: %s", path, what, strerror(errno));
    }
    if (rc != SN_OK) {
        close(*fd);
        *fd = -1;
    }
    return rc;
}

int sn_fopen_regular(const char *path, const char *mode, const char *what, FILE **f,
                     struct sn_err *err)
{
    *f = NULL;
    int fd;
    SN_FORWARD(sn_open_regular(path, what, &fd, err));
    *f = fdopen(fd, mode);
    if (*f == NULL) {
        int e = errno;
        close(fd);
        return sn_err_set(err, SN_EIO, "%s: cannot read %s: %s", path, what, strerror(e));
    }
    return SN_OK;
}

void sn_remove_stale(const char *dir, const char *prefix)
{
    char pattern[2200];
    snprintf(pattern, sizeof pattern, "%s/%s*.tmp.*", dir, prefix);
    glob_t g;
    if (glob(pattern, 0, NULL, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; i++)
            unlink(g.gl_pathv[i]);
    globfree(&g);
}

int sn_atomic_open(struct sn_atomic_file *af, const char *path, struct sn_err *err)
{
    memset(af, 0, sizeof *af);
    int len = snprintf(af->path, sizeof af->path, "%s", path);
    SN_RETURN_IF(len < 0 || (size_t)len >= sizeof af->path, err, SN_EINVAL, "%s: path too long",
                 path);
    snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(af->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return sn_err_set(err, SN_EIO,
                          "%s: cannot create the temporary file %s: %s; HINT: does the directory "
                          "exist and is it writable?",
                          path, af->tmp, strerror(errno));
    af->f = fdopen(fd, "wb");
    if (af->f == NULL) {
        int e = errno;
        close(fd);
        unlink(af->tmp);
        return sn_err_set(err, SN_EIO, "%s: cannot open: %s", af->tmp, strerror(e));
    }
    return SN_OK;
}

/* fsync of the directory holding path, so that the rename itself survives a crash. */
static int sync_dir(const char *path)
{
    char dir[1024];
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int sn_atomic_commit(struct sn_atomic_file *af, struct sn_err *err)
{
    FILE *f = af->f;
    af->f = NULL;
    int bad = f == NULL || ferror(f) || fflush(f) != 0 || fsync(fileno(f)) != 0;
    int e = errno;
    if (f != NULL && fclose(f) != 0 && !bad)
        bad = 1, e = errno;
    if (bad) {
        unlink(af->tmp);
        return sn_err_set(err, SN_EIO, "%s: cannot write %s: %s", af->path, af->tmp,
                          strerror(e ? e : EIO));
    }
    if (rename(af->tmp, af->path) != 0) {
        e = errno;
        unlink(af->tmp);
        return sn_err_set(err, SN_EIO, "%s: cannot rename %s over it: %s", af->path, af->tmp,
                          strerror(e));
    }
    if (sync_dir(af->path) != 0)
        return sn_err_set(err, SN_EIO, "%s: written, but its directory could not be synced: %s",
                          af->path, strerror(errno));
    return SN_OK;
}

void sn_atomic_abort(struct sn_atomic_file *af)
{
    if (af->f == NULL)
        return;
    fclose(af->f);
    af->f = NULL;
    unlink(af->tmp);
}
