/*
 * sampan-runtime's launcher: starts the Python runtime (the script at SCRIPT, under
 * PYTHON with -I -S) and, for the commands that enter a container, starts it from a
 * read-only view of the interpreter (CVE-2019-5736: see src/sampan/runtime/sealed.py).
 *
 * Why C: the script alone must start one interpreter to make that view and a second one
 * from it, and an interpreter start is a third of runc's whole `run`. runc does the same
 * in C for the same reason (nsexec.c, before the Go runtime starts). The view is what
 * sealed.overlay_view() makes: a detached overlayfs whose layers are the interpreter's
 * directory and an empty tmpfs, never attached anywhere and never writable. Whatever goes
 * wrong here, the launcher falls back to the plain interpreter, whose script then
 * re-executes itself from a protected copy as it does without the launcher. For the same
 * commands it first starts the wait the kernel makes before a process's first move into a
 * cgroup (warm_cgroup_lock), so that it passes while Python starts.
 *
 * It runs the script's compiled form, SCRIPT.pyc, where install.sh made it: Python runs a
 * .pyc named as the script as it runs the script, without compiling it first (the first
 * compile of an interpreter's life costs about as much as its imports of sampan's modules).
 *
 * scripts/install.sh builds it with -DPYTHON=... -DSCRIPT=... (absolute paths).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/mount.h>

#ifndef PYTHON
#error "build with -DPYTHON=\"/path/to/venv/bin/python\""
#endif
#ifndef SCRIPT
#error "build with -DSCRIPT=\"/path/to/sampan-runtime script\""
#endif

/* runc's global flags that take a value, and the commands that enter a container: the
 * same lists as sealed.VALUE_FLAGS and sealed.ENTERING (a test keeps them in step). */
static const char *const VALUE_FLAGS[] = {"--root", "--log", "--log-format", "--rootless",
                                          "--criu", NULL};
static const char *const ENTERING[] = {"create", "run", "exec", NULL};

static int listed(const char *arg, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(arg, *list) == 0)
            return 1;
    return 0;
}

static int entering(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return i + 1 < argc && listed(argv[i + 1], ENTERING);
        if (argv[i][0] == '-') {
            if (listed(argv[i], VALUE_FLAGS))
                i++;
            continue;
        }
        return listed(argv[i], ENTERING);
    }
    return 0;
}

/* A detached mount of a new filesystem of `type`, configured by `setup`; -1 on error. */
static int detached(const char *type, int (*setup)(int fs, void *arg), void *arg)
{
    int fs = syscall(SYS_fsopen, type, FSOPEN_CLOEXEC);
    if (fs < 0)
        return -1;
    int mnt = -1;
    if ((!setup || setup(fs, arg) == 0) &&
        syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0)
        mnt = syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY);
    close(fs);
    return mnt;
}

struct layers {
    const char *dir;
    int empty;
};

static int overlay_layers(int fs, void *arg)
{
    struct layers *l = arg;
    if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "lowerdir+", l->dir, 0) != 0)
        return -1;
    return syscall(SYS_fsconfig, fs, FSCONFIG_SET_FD, "lowerdir+", NULL, l->empty);
}

/* An O_PATH fd of the interpreter through the read-only view; -1 on error. */
static int overlay_view(void)
{
    char real[PATH_MAX], dir[PATH_MAX];
    if (!realpath(PYTHON, real))
        return -1;
    strcpy(dir, real);
    struct layers l = {dirname(dir), detached("tmpfs", NULL, NULL)};
    if (l.empty < 0)
        return -1;
    int mnt = detached("overlay", overlay_layers, &l);
    close(l.empty);
    if (mnt < 0)
        return -1;
    int fd = openat(mnt, basename(real), O_PATH | O_CLOEXEC);
    close(mnt);
    return fd;
}

/* The cgroup.procs file of this process's own cgroup, in the v2 hierarchy where there is
 * one (mounted at /sys/fs/cgroup or, on hybrid hosts, /sys/fs/cgroup/unified), else in the
 * first v1 hierarchy that has one. */
static int own_procs_file(char *out, size_t size)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return -1;
    char line[PATH_MAX];
    int fd = -1;
    for (int v1 = 0; v1 < 2 && fd < 0; v1++, rewind(f)) {
        while (fd < 0 && fgets(line, sizeof line, f)) {
            line[strcspn(line, "\n")] = 0;
            char *ctrl = strchr(line, ':');
            char *rel = ctrl ? strchr(ctrl + 1, ':') : NULL;
            if (!rel || (*++ctrl != ':') != v1)
                continue;
            *rel++ = 0;
            if (!strcmp(rel, "/"))
                rel = "";
            if (!strncmp(ctrl, "name=", 5))
                ctrl += 5;
            const char *const v2[] = {"/sys/fs/cgroup/unified", "/sys/fs/cgroup", NULL};
            for (int i = 0; fd < 0 && (v1 ? i < 1 : v2[i] != NULL); i++) {
                if (v1)
                    snprintf(out, size, "/sys/fs/cgroup/%s%s/cgroup.procs", ctrl, rel);
                else
                    snprintf(out, size, "%s%s/cgroup.procs", v2[i], rel);
                fd = open(out, O_WRONLY | O_CLOEXEC);
            }
        }
    }
    fclose(f);
    return fd;
}

/* Moving a process into a cgroup takes the kernel's global cgroup_threadgroup_rwsem for
 * writing; when nobody has lately, the writer first waits a whole RCU grace period (about
 * 10 ms here), and the runtime's placement of the container's init would wait it after
 * Python has started. A child writes its own pid into its own cgroup (a move to where it
 * already is) every 2 ms while Python starts: the first write waits the grace period in
 * parallel, and the lock stays in its writer-ready state until the runtime's own write
 * (the kernel's "favordynmods" cgroup mount option keeps it so for good). The runtime
 * kills and reaps it once the init is placed (runtime/warmup.py: its pid is in
 * WARMUP_ENV); it dies with the runtime and stops after 150 ms in any case. */
#define WARMUP_ENV "_SAMPAN_RUNTIME_WARMUP"

static pid_t warm_cgroup_lock(void)
{
    pid_t runtime = getpid();
    pid_t helper = fork();
    if (helper != 0)
        return helper;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    char path[PATH_MAX];
    int fd = getppid() == runtime ? own_procs_file(path, sizeof path) : -1;
    struct timespec tick = {0, 2000000};
    for (int i = 0; fd >= 0 && i < 75 && write(fd, "0", 1) == 1; i++)
        nanosleep(&tick, NULL);
    _exit(0);
}

int main(int argc, char **argv)
{
    char **args = calloc(argc + 3, sizeof(char *));
    if (!args)
        return 125;
    args[0] = PYTHON;
    args[1] = "-IS";
    args[2] = access(SCRIPT ".pyc", R_OK) == 0 ? SCRIPT ".pyc" : SCRIPT;
    memcpy(args + 3, argv + 1, (argc - 1) * sizeof(char *));
    unsetenv(WARMUP_ENV);  /* only ever this launcher's own helper */
    if (entering(argc, argv)) {
        pid_t helper = warm_cgroup_lock();
        char pid[16];
        if (helper > 0 && snprintf(pid, sizeof pid, "%d", (int)helper) > 0)
            setenv(WARMUP_ENV, pid, 1);
        int fd = overlay_view();
        if (fd >= 0)
            syscall(SYS_execveat, fd, "", args, environ, AT_EMPTY_PATH);
    }
    execv(PYTHON, args);
    return 127;
}
