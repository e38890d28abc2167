/* netdelay.c — shardnet-netdelay: a relay that joins network namespaces through TUN devices and
 * holds every packet for a fixed time, for kernels built without netem (CONFIG_NET_SCH_NETEM),
 * as many container and virtual machine kernels are. cluster/netns-hosts starts it for
 * `up N --delay D` when netem is missing (or with --relay).
 *
 *   shardnet-netdelay --delay D [--dev NAME] [--queue-mb M] [--no-offload] [--daemon LOGFILE]
 *                     NS=ADDR...
 *
 * For each NS=ADDR (a namespace made by `ip netns add NS`, and the IPv4 address its host will
 * hold), it enters the namespace, creates the TUN device NAME there (default sn0) and comes back:
 * the file descriptor stays bound to the device in that namespace, so one process in one
 * namespace serves them all and nothing is added to the namespace it was started in. Giving the
 * devices their addresses, MTU and state is the caller's job (netns-hosts does it). Then one
 * thread: every IPv4 packet a host sends through its device is stamped with now + D
 * (CLOCK_MONOTONIC), queued, and written to the device of the host holding its destination
 * address once due, that is never before D. The queue is a ring of --queue-mb MiB allocated at
 * start (default 64); a packet that finds it full is dropped and counted, as a switch's full
 * buffer would. A packet for an address no host holds, and any non-IPv4 packet, is dropped and
 * counted. The delay is one way: a round trip between two hosts takes 2 D at least. The devices
 * take checksum and segmentation offloads (IFF_VNET_HDR, TUNSETOFFLOAD), as a veth does, so a
 * host neither computes checksums nor cuts its TCP stream into MTU-sized packets for the relay;
 * --no-offload turns that off (about 10% less bandwidth through the relay here).
 *
 * It is not netem: no jitter, loss or reordering, one FIFO for all hosts (so a constant D keeps
 * packets in order), and no rate (netns-hosts shapes the devices' egress with tbf for --rate).
 * Every packet is copied through this process twice and the receiving host's network stack runs
 * on its thread, so it caps throughput at what one core copies (README.md, "Latency: links
 * with a delay", gives figures).
 *
 * With --daemon LOGFILE it detaches once every device exists (so the caller can configure them
 * as soon as it returns) and writes its messages to LOGFILE. SIGTERM or SIGINT ends it; it
 * prints what it relayed, dropped and how late past its due time a packet went out, on exit
 * and on SIGUSR1. Exit codes: 0 ok, 1 failure, 2 usage, 77 no TUN support (/dev/net/tun). */
#define _GNU_SOURCE
#include <arpa/inet.h>     // defines: inet_pton
#include <errno.h>         // defines: errno, EAGAIN, EINTR, ENOENT, ENODEV
#include <fcntl.h>         // defines: open, O_RDWR, O_NONBLOCK, O_CLOEXEC, O_NOFOLLOW
#include <limits.h>        // defines: INT_MAX
#include <linux/if.h>      // defines: IFNAMSIZ, struct ifreq
#include <linux/if_tun.h>  // defines: TUNSETIFF, TUNSETOFFLOAD, IFF_TUN, IFF_NO_PI, IFF_VNET_HDR
#include <linux/virtio_net.h> // defines: struct virtio_net_hdr
#include <poll.h>          // defines: ppoll, struct pollfd, POLLIN
#include <sched.h>         // defines: setns, CLONE_NEWNET
#include <signal.h>        // defines: sigset_t, sigprocmask, SIGTERM, SIGINT, SIGUSR1
#include <stdint.h>        // defines: uint8_t, uint32_t, uint64_t, int64_t
#include <stdio.h>         // defines: fprintf, snprintf
#include <stdlib.h>        // defines: malloc, free, strtod, strtol
#include <string.h>        // defines: strerror, strchr, strcmp, memcpy
#include <sys/ioctl.h>     // defines: ioctl
#include <sys/prctl.h>     // defines: prctl, PR_SET_TIMERSLACK
#include <sys/signalfd.h>  // defines: signalfd, struct signalfd_siginfo
#include <time.h>          // defines: clock_gettime, CLOCK_MONOTONIC
#include <unistd.h>        // defines: read, write, close, fork, setsid, dup2

#define ND_MAX_HOSTS 1024
#define ND_MAX_PACKET (65536 + 16) /* an IPv4 packet's largest size (its total length is 16
                                    * bits), after the virtio header (10 bytes) of offloads */
#define ND_HDR 16           /* bytes of struct nd_pkt, a multiple of the ring's alignment */
#define ND_SKIP UINT32_MAX  /* nd_pkt.len of a marker: the rest of the ring is unused, wrap */

static const char *me = "shardnet-netdelay";

/* One queued packet in the ring: this header, then len bytes, padded to 16. */
struct nd_pkt {
    int64_t due;  /* CLOCK_MONOTONIC ns at which it may be written */
    uint32_t len; /* bytes of the packet, or ND_SKIP */
    uint32_t dst; /* index of the destination host */
};
_Static_assert(sizeof(struct nd_pkt) == ND_HDR, "the ring's header is 16 bytes");

struct nd_host {
    const char *ns; /* namespace name — view into argv */
    uint32_t addr;  /* IPv4 address, network order */
    int fd;         /* the TUN device in that namespace — owned */
};

struct nd_stats {
    uint64_t pkts, bytes;         /* written to their destination */
    uint64_t full, nohost, notv4; /* dropped: queue full, unknown destination, not IPv4 */
    uint64_t wfail;               /* dropped: the destination device refused the write */
    uint64_t late_sum, late_max;  /* ns between a packet's due time and its write */
};

struct nd_relay {
    struct nd_host host[ND_MAX_HOSTS];
    int n;
    int64_t delay;  /* ns */
    uint8_t *ring;  /* the queue — owned; cap bytes, 16-aligned */
    uint64_t cap;   /* bytes, a multiple of 16 */
    uint64_t head;  /* position of the oldest packet (positions only grow; ring index = pos % cap) */
    uint64_t tail;  /* position where the next packet goes */
    uint8_t *drop;  /* a packet read while the ring is full goes here — owned, ND_MAX_PACKET */
    int64_t early; /* ns: how long before a packet's due time the timer is set (see main) */
    int vnet;      /* bytes of struct virtio_net_hdr before each packet: 10 with offloads, or 0 */
    struct nd_stats st;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t align16(uint64_t n) { return (n + 15) & ~(uint64_t)15; }

/* "2ms", "500us", "0.5ms", "1s", "0us" -> ns in *out; 0, or -1 when it is not a delay. */
static int parse_delay(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno != 0 || !(v >= 0))
        return -1;
    double mul;
    if (strcmp(end, "us") == 0)
        mul = 1e3;
    else if (strcmp(end, "ms") == 0)
        mul = 1e6;
    else if (strcmp(end, "s") == 0)
        mul = 1e9;
    else
        return -1;
    if (v * mul > 60e9) /* a minute: beyond it TCP gives up anyway */
        return -1;
    *out = (int64_t)(v * mul + 0.5);
    return 0;
}

/* Create TUN device `dev` in namespace `ns` and return its fd, or -1 (said) with *rc the exit
 * code: 77 when this kernel or machine has no TUN support, 1 otherwise. `home` is an fd of the
 * namespace to come back to. */
static int tun_in_ns(const char *ns, const char *dev, int vnet, int home, int *rc)
{
    char path[512];
    *rc = 1;
    snprintf(path, sizeof path, "/var/run/netns/%s", ns);
    int nsfd = open(path, O_RDONLY | O_CLOEXEC);
    if (nsfd < 0) {
        fprintf(stderr, "%s: %s: cannot open: %s (make it with 'ip netns add %s')\n", me, path,
                strerror(errno), ns);
        return -1;
    }
    if (setns(nsfd, CLONE_NEWNET) != 0) {
        fprintf(stderr, "%s: %s: cannot enter the namespace: %s (root, or CAP_SYS_ADMIN, needed)\n",
                me, path, strerror(errno));
        close(nsfd);
        return -1;
    }
    close(nsfd);
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    int err = errno;
    if (fd < 0) {
        fprintf(stderr, "%s: /dev/net/tun: cannot open: %s (a kernel with CONFIG_TUN, and the device "
                        "node, are needed)\n", me, strerror(err));
        if (err == ENOENT || err == ENODEV || err == ENXIO)
            *rc = 77;
    } else {
        struct ifreq ifr = {0};
        ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0);
        snprintf(ifr.ifr_name, IFNAMSIZ, "%s", dev);
        /* with offloads the sending host leaves the checksum to the device and hands it TCP
         * segments of up to 64 KiB (TSO): the relay passes both on with their virtio header, and
         * the receiving host takes them as a network card's (checksum verified, segments merged),
         * so neither host computes a checksum nor cuts a segment, as through a veth */
        unsigned offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
        if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
            fprintf(stderr, "%s: namespace %s: cannot create TUN device %s: %s%s\n", me, ns, dev,
                    strerror(errno), errno == EBUSY ? " (a device of that name exists there)" : "");
            close(fd);
            fd = -1;
        } else if (vnet && ioctl(fd, TUNSETOFFLOAD, offloads) != 0) {
            fprintf(stderr, "%s: namespace %s: TUN device %s refuses checksum and segmentation "
                    "offloads: %s (--no-offload)\n", me, ns, dev, strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    if (setns(home, CLONE_NEWNET) != 0) {
        /* never stay in a host's namespace: the next device would be made in the wrong place */
        fprintf(stderr, "%s: cannot return to the starting namespace: %s\n", me, strerror(errno));
        if (fd >= 0)
            close(fd);
        *rc = 1;
        return -1;
    }
    if (fd >= 0)
        *rc = 0;
    return fd;
}

static void print_stats(const struct nd_relay *r)
{
    const struct nd_stats *s = &r->st;
    uint64_t queued = r->tail - r->head;
    fprintf(stderr, "%s: relayed %llu packets, %llu bytes; dropped %llu (queue full), %llu (no such "
            "host), %llu (not IPv4), %llu (write failed); late past due: mean %.1f us, max %.1f us; "
            "%llu bytes queued; timer set %.1f us early\n", me,
            (unsigned long long)s->pkts, (unsigned long long)s->bytes, (unsigned long long)s->full,
            (unsigned long long)s->nohost, (unsigned long long)s->notv4,
            (unsigned long long)s->wfail, s->pkts ? 1e-3 * (double)s->late_sum / (double)s->pkts : 0.0,
            1e-3 * (double)s->late_max, (unsigned long long)queued, 1e-3 * (double)r->early);
}

/* The host holding IPv4 address `addr` (network order), or -1. */
static int host_of(const struct nd_relay *r, uint32_t addr)
{
    for (int i = 0; i < r->n; i++)
        if (r->host[i].addr == addr)
            return i;
    return -1;
}

/* Read the packets waiting on host `src`'s device into the ring, each stamped with the time it
 * was read + delay (never earlier than it was sent + delay); at most 256, so that a busy host
 * does not hold up the packets falling due. */
static void take(struct nd_relay *r, int src)
{
    for (int k = 0; k < 256; k++) {
        /* a packet is read straight into the ring, so it needs ND_HDR + ND_MAX_PACKET contiguous
         * bytes at the tail; when the end of the ring is nearer, a marker skips to its start */
        uint64_t at = r->tail % r->cap, room = r->cap - (r->tail - r->head);
        uint64_t need = ND_HDR + ND_MAX_PACKET, skip = r->cap - at < need ? r->cap - at : 0;
        uint8_t *buf = room >= skip + need ? r->ring + (at + skip) % r->cap + ND_HDR : r->drop;
        ssize_t n = read(r->host[src].fd, buf, ND_MAX_PACKET);
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR)
                fprintf(stderr, "%s: namespace %s: reading its device: %s\n", me, r->host[src].ns,
                        strerror(errno));
            return;
        }
        const uint8_t *ip = buf + r->vnet;
        if (n < r->vnet + 20 || (ip[0] >> 4) != 4) {
            r->st.notv4++;
            continue;
        }
        uint32_t daddr;
        memcpy(&daddr, ip + 16, 4);
        int dst = host_of(r, daddr);
        if (dst < 0) {
            r->st.nohost++;
            continue;
        }
        if (buf == r->drop) {
            r->st.full++;
            continue;
        }
        if (skip) {
            struct nd_pkt mark = {.due = 0, .len = ND_SKIP, .dst = 0};
            memcpy(r->ring + at, &mark, ND_HDR);
            r->tail += skip;
            at = 0;
        }
        struct nd_pkt p = {.due = now_ns() + r->delay, .len = (uint32_t)n, .dst = (uint32_t)dst};
        memcpy(r->ring + at, &p, ND_HDR);
        r->tail += align16(ND_HDR + (uint64_t)n);
    }
}

/* Write every packet that is due by now; return the ns until the next one is due, or -1 when
 * the ring is empty. */
static int64_t give(struct nd_relay *r)
{
    int64_t now = now_ns();
    while (r->head != r->tail) {
        uint64_t at = r->head % r->cap;
        struct nd_pkt p;
        memcpy(&p, r->ring + at, ND_HDR);
        if (p.len == ND_SKIP) {
            r->head += r->cap - at;
            continue;
        }
        now = now_ns(); /* the writes before took time */
        if (p.due > now)
            return p.due - now;
        ssize_t w = write(r->host[p.dst].fd, r->ring + at + ND_HDR, p.len);
        if (w == (ssize_t)p.len) {
            uint64_t late = (uint64_t)(now - p.due);
            r->st.pkts++;
            r->st.bytes += p.len - (uint32_t)r->vnet;
            r->st.late_sum += late;
            if (late > r->st.late_max)
                r->st.late_max = late;
        } else {
            r->st.wfail++;
        }
        r->head += align16(ND_HDR + p.len);
    }
    return -1;
}

/* Detach: the parent exits 0 (the devices exist, held by the child); the child goes on with
 * `log` as its stderr. Returns 0 in the child, -1 (said) on failure. */
static int daemonize(const char *log)
{
    /* root writes it, often in /tmp: never through a link someone else planted there */
    int lfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (lfd < 0) {
        fprintf(stderr, "%s: %s: cannot open the log: %s\n", me, log, strerror(errno));
        return -1;
    }
    int nul = open("/dev/null", O_RDWR);
    if (nul < 0) {
        fprintf(stderr, "%s: /dev/null: %s\n", me, strerror(errno));
        close(lfd);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "%s: fork: %s\n", me, strerror(errno));
        return -1;
    }
    if (pid > 0) {
        printf("%ld\n", (long)pid);
        fflush(stdout);
        _exit(0);
    }
    setsid();
    dup2(nul, 0);
    dup2(nul, 1);
    dup2(lfd, 2);
    close(nul);
    close(lfd);
    if (chdir("/") != 0) /* not to hold the caller's directory busy */
        fprintf(stderr, "%s: chdir /: %s\n", me, strerror(errno));
    return 0;
}

static int usage(const char *why)
{
    fprintf(stderr, "%s: %s\nusage: %s --delay D [--dev NAME] [--queue-mb M] [--no-offload] [--daemon LOGFILE] "
            "NS=ADDR...\n  D: a number with us, ms or s (500us, 2ms); NS: a namespace of "
            "'ip netns'; ADDR: the IPv4 address its host holds\n", me, why, me);
    return 2;
}

int main(int argc, char **argv)
{
    static struct nd_relay r; /* static for its size (the host table), not shared */
    const char *dev = "sn0", *log = NULL;
    int64_t delay = -1;
    long queue_mb = 64;
    int vnet = (int)sizeof(struct virtio_net_hdr);
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i += 2) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        char msg[256];
        if (strcmp(opt, "--no-offload") == 0) {
            vnet = 0;
            i--; /* no value */
            continue;
        }
        if (!val) {
            snprintf(msg, sizeof msg, "%s needs a value", opt);
            return usage(msg);
        }
        if (strcmp(opt, "--delay") == 0) {
            if (parse_delay(val, &delay) != 0) {
                snprintf(msg, sizeof msg, "--delay wants a number with us, ms or s up to 60 s "
                         "(e.g. 500us, 2ms), not '%s'", val);
                return usage(msg);
            }
        } else if (strcmp(opt, "--dev") == 0) {
            if (strlen(val) == 0 || strlen(val) >= IFNAMSIZ || strchr(val, '/')) {
                snprintf(msg, sizeof msg, "--dev wants an interface name of 1-%d characters, not '%s'",
                         IFNAMSIZ - 1, val);
                return usage(msg);
            }
            dev = val;
        } else if (strcmp(opt, "--queue-mb") == 0) {
            char *end;
            errno = 0;
            queue_mb = strtol(val, &end, 10);
            if (end == val || *end || errno || queue_mb < 1 || queue_mb > 4096) {
                snprintf(msg, sizeof msg, "--queue-mb wants 1..4096 (MiB), not '%s'", val);
                return usage(msg);
            }
        } else if (strcmp(opt, "--daemon") == 0) {
            log = val;
        } else {
            snprintf(msg, sizeof msg, "unknown option '%s'", opt);
            return usage(msg);
        }
    }
    if (delay < 0)
        return usage("--delay is required");
    if (argc - i < 1)
        return usage("no hosts: give NS=ADDR for each");
    if (argc - i > ND_MAX_HOSTS)
        return usage("too many hosts (1024 at most)");
    r.delay = delay;
    r.vnet = vnet;
    for (; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        struct in_addr a;
        /* a name of /var/run/netns, not a path */
        if (!eq || eq == argv[i] || memchr(argv[i], '/', (size_t)(eq - argv[i])) || argv[i][0] == '.' ||
            inet_pton(AF_INET, eq + 1, &a) != 1) {
            char msg[512];
            snprintf(msg, sizeof msg, "'%s': expected NS=ADDR, e.g. shardnet-h1=198.18.0.1", argv[i]);
            return usage(msg);
        }
        *eq = '\0';
        if (host_of(&r, a.s_addr) >= 0) {
            char msg[512];
            snprintf(msg, sizeof msg, "address %s given twice", eq + 1);
            return usage(msg);
        }
        r.host[r.n++] = (struct nd_host){.ns = argv[i], .addr = a.s_addr, .fd = -1};
    }

    r.cap = (uint64_t)queue_mb << 20;
    r.ring = malloc(r.cap);
    r.drop = malloc(ND_MAX_PACKET);
    if (!r.ring || !r.drop) {
        fprintf(stderr, "%s: cannot allocate a queue of %ld MiB (--queue-mb)\n", me, queue_mb);
        return 1;
    }
    int home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home < 0) {
        fprintf(stderr, "%s: /proc/self/ns/net: cannot open: %s (no network namespaces?)\n", me,
                strerror(errno));
        return 1;
    }
    int rc = 0;
    for (int h = 0; h < r.n && rc == 0; h++)
        r.host[h].fd = tun_in_ns(r.host[h].ns, dev, r.vnet, home, &rc);
    close(home);

    /* the signals arrive through a descriptor polled with the devices: no handler, no global */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGUSR1);
    int sfd = -1;
    if (rc == 0) {
        sigprocmask(SIG_BLOCK, &sigs, NULL);
        sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
        if (sfd < 0) {
            fprintf(stderr, "%s: signalfd: %s\n", me, strerror(errno));
            rc = 1;
        }
    }
    if (rc == 0 && log && daemonize(log) != 0)
        rc = 1;
    if (rc != 0) {
        for (int h = 0; h < r.n; h++)
            if (r.host[h].fd >= 0)
                close(r.host[h].fd);
        free(r.ring);
        free(r.drop);
        return rc;
    }
    /* the default timer slack (50 us) would make every wake-up that late */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    {
        char d[32];
        snprintf(d, sizeof d, "%.3f ms", 1e-6 * (double)delay);
        fprintf(stderr, "%s: pid %ld relaying %d hosts through device %s, one-way delay %s, queue "
                "%ld MiB\n", me, (long)getpid(), r.n, dev, d, queue_mb);
    }

    struct pollfd *pfd = malloc(sizeof *pfd * (size_t)(r.n + 1));
    if (!pfd) {
        fprintf(stderr, "%s: out of memory\n", me);
        return 1;
    }
    for (int h = 0; h < r.n; h++)
        pfd[h] = (struct pollfd){.fd = r.host[h].fd, .events = POLLIN};
    pfd[r.n] = (struct pollfd){.fd = sfd, .events = POLLIN};
    int running = 1;
    rc = 0;
    while (running) {
        /* A timer wakes a thread tens of microseconds late (70 us at the median on a virtual
         * machine), which would add that to every delay. So the timer is set `early` before the
         * due time, early being the mean lateness of past wake-ups (up to 200 us), and the rest
         * is waited on the clock: a packet still never leaves before it is due. */
        int64_t wait = give(&r), sleep = wait - r.early, t0 = now_ns();
        if (wait >= 0 && sleep <= 0) {
            while (now_ns() < t0 + wait) {
            }
            sleep = 0; /* a look at the devices, then the packet goes */
        }
        struct timespec ts = {.tv_sec = sleep / 1000000000, .tv_nsec = sleep % 1000000000};
        int k = ppoll(pfd, (nfds_t)(r.n + 1), wait < 0 ? NULL : &ts, NULL);
        if (k == 0 && sleep > 0) {
            int64_t late = now_ns() - (t0 + sleep);
            late = late < 0 ? 0 : late > 1000000 ? 1000000 : late; /* a long stall is not the timer */
            r.early += (late - r.early) / 8;
            r.early = r.early > 200000 ? 200000 : r.early;
        }
        if (k < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "%s: ppoll: %s\n", me, strerror(errno));
            rc = 1;
            break;
        }
        for (int h = 0; h < r.n; h++) {
            if (pfd[h].revents & (POLLERR | POLLHUP | POLLNVAL)) {
                fprintf(stderr, "%s: namespace %s: its device is gone (namespace deleted?)\n", me,
                        r.host[h].ns);
                running = 0;
                rc = 1;
            } else if (pfd[h].revents & POLLIN) {
                take(&r, h);
            }
        }
        if (pfd[r.n].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                if (si.ssi_signo == SIGUSR1) {
                    print_stats(&r);
                } else {
                    fprintf(stderr, "%s: %s: stopping\n", me, strsignal((int)si.ssi_signo));
                    running = 0;
                }
            }
        }
    }
    print_stats(&r);
    for (int h = 0; h < r.n; h++)
        close(r.host[h].fd);
    close(sfd);
    free(pfd);
    free(r.ring);
    free(r.drop);
    return rc;
}
