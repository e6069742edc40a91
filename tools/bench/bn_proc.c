/*
 * What the servers cost: CPU seconds (utime + stime from /proc/<pid>/stat)
 * and memory (VmRSS, VmHWM from /proc/<pid>/status); and the file
 * descriptor limit that many connections need.
 */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

void bn_proc_read(int pid, struct bn_proc_sample *out)
{
    char path[64], buf[4096];
    memset(out, 0, sizeof(*out));
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: fields start after
     * the last ')'. utime and stime are fields 14 and 15 (1-based). */
    char *p = strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return;
    out->cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    f = fopen(path, "r");
    if (!f)
        return;
    while (fgets(buf, sizeof(buf), f)) {
        if (strncmp(buf, "VmRSS:", 6) == 0)
            out->rss_kib = atol(buf + 6);
        else if (strncmp(buf, "VmHWM:", 6) == 0)
            out->hwm_kib = atol(buf + 6);
    }
    fclose(f);
    out->ok = true;
}

void bn_proc_read_all(const struct bn *b, struct bn_proc_sample *out)
{
    for (int i = 0; i < b->cfg.npids; i++)
        bn_proc_read(b->cfg.pids[i].pid, &out[i]);
}

double bn_self_cpu_s(void)
{
    return bn_self_user_s() + bn_self_sys_s();
}

double bn_self_user_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
}

double bn_self_sys_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

double bn_machine_busy_s(void)
{
    /* cpu  user nice system idle iowait irq softirq steal ... (ticks) */
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return 0;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 7)
        return 0;
    unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    return (double)busy / (double)sysconf(_SC_CLK_TCK);
}

int bn_raise_nofile(long n)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)n + 32; /* connections, epoll, /proc and Redis reads, stdio */
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    if (rl.rlim_cur >= want)
        return 0;
    rlim_t old_max = rl.rlim_max;
    if (rl.rlim_max < want) {
        rl.rlim_max = want; /* root (CAP_SYS_RESOURCE) may raise the hard limit */
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            return 0;
        rl.rlim_max = old_max;
    }
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur >= want)
        return 0;
    fprintf(stderr,
            "chat-bench: %ld connections need %llu file descriptors but the limit is %llu "
            "(%s); raise it, e.g. prlimit --nofile=%llu:%llu chat-bench ...\n",
            n, (unsigned long long)want, (unsigned long long)rl.rlim_cur, strerror(errno),
            (unsigned long long)want, (unsigned long long)want);
    return -1;
}
