/* sec-helper: the attacks busybox cannot make, each printing one line and exiting 0 only
 * when the attempt SUCCEEDED (so a test asserts a non-zero status and reads the reason).
 *
 *   sec-helper ptrace PID      PTRACE_ATTACH to PID (detaches again if allowed)
 *   sec-helper init_module     init_module(2) of a bogus image, then finit_module(2) of /dev/null
 *   sec-helper exe-hunt SECS   CVE-2019-5736: for SECS seconds, catch every process whose
 *                              /proc/PID/exe is not this helper or busybox, and try to open
 *                              that binary for writing, directly and through a read-only fd
 *                              reopened by /proc/self/fd. Nothing is ever written: a line
 *                              "WRITABLE dev ino" says what could have been overwritten.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int do_ptrace(pid_t pid) {
    if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) != 0) {
        printf("ptrace: %s\n", strerror(errno));
        return 1;
    }
    waitpid(pid, NULL, __WALL);
    ptrace(PTRACE_DETACH, pid, NULL, NULL);
    printf("ptrace: attached\n");
    return 0;
}

static int do_init_module(void) {
    static char image[64] = "\177ELF";
    int failed = 0;
    if (syscall(SYS_init_module, image, sizeof image, "") != 0) {
        printf("init_module: %s\n", strerror(errno));
        failed++;
    }
    int fd = open("/dev/null", O_RDONLY);
    if (syscall(SYS_finit_module, fd, "", 0) != 0) {
        printf("finit_module: %s\n", strerror(errno));
        failed++;
    }
    return failed == 2 ? 1 : 0;
}

static void report(const char *how, int fd) {
    struct stat st;
    fstat(fd, &st);
    printf("WRITABLE %s %lu %lu\n", how, (unsigned long)st.st_dev, (unsigned long)st.st_ino);
    fflush(stdout);
}

static int try_exe(const char *pid, const char *self) {
    char path[300], link[4096], reopen[64];
    snprintf(path, sizeof path, "/proc/%s/exe", pid);
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n < 0)
        return 0;
    link[n] = 0;
    if (strcmp(link, self) == 0 || strstr(link, "busybox"))
        return 0;
    int wfd = open(path, O_WRONLY);
    if (wfd >= 0) {
        report("direct", wfd);
        close(wfd);
    }
    int rfd = open(path, O_RDONLY | O_CLOEXEC);
    if (rfd < 0)
        return 1;
    printf("readable %s %s\n", pid, link);
    fflush(stdout);
    /* Hold the fd until the process has gone (no longer executing the file), then try. */
    char proc[300];
    snprintf(proc, sizeof proc, "/proc/%s", pid);
    for (int i = 0; i < 2000 && access(proc, F_OK) == 0; i++)
        usleep(1000);
    snprintf(reopen, sizeof reopen, "/proc/self/fd/%d", rfd);
    wfd = open(reopen, O_WRONLY);
    if (wfd >= 0) {
        report("reopen", wfd);
        close(wfd);
    } else {
        printf("reopen refused: %s\n", strerror(errno));
    }
    close(rfd);
    return 1;
}

static int do_exe_hunt(int seconds) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n < 0 ? 0 : n] = 0;
    time_t end = time(NULL) + seconds;
    int seen = 0;
    printf("hunting\n");
    fflush(stdout);
    while (time(NULL) < end) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] >= '1' && e->d_name[0] <= '9')
                seen += try_exe(e->d_name, self);
        closedir(d);
    }
    printf("caught %d\n", seen);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 3 && strcmp(argv[1], "ptrace") == 0)
        return do_ptrace(atoi(argv[2]));
    if (argc >= 2 && strcmp(argv[1], "init_module") == 0)
        return do_init_module();
    if (argc >= 3 && strcmp(argv[1], "exe-hunt") == 0)
        return do_exe_hunt(atoi(argv[2]));
    fprintf(stderr, "usage: sec-helper ptrace PID | init_module | exe-hunt SECONDS\n");
    return 2;
}
