/* pam-driver: a PAM application for the end-to-end tests (tests/pam.rs), like login or sshd.
 *
 *   pam-driver SERVICE USER < steps
 *
 * It first starts a session of its own (setsid, as login daemons do per login) and joins a fresh
 * root-owned session keyring (as a login daemon started by init has one
 * that is not the user's), then runs one step per line of stdin. Secrets on step lines are hex,
 * and stdin is read unbuffered into a buffer that is wiped, so the `scan` step can tell whether
 * anything else in this process still holds a password.
 *
 *   ruid                  set the real uid to USER's (as setuid passwd run by the user has)
 *   putenv K=V            pam_putenv and setenv (environment the module must ignore)
 *   env K=V               extra environment for the commands of `run`
 *   auth HEXPASS          pam_authenticate; every echo-off prompt is answered with HEXPASS
 *   forkauth HEXPASS      the same in a forked child that exits after it, as OpenSSH's
 *                         keyboard-interactive method does; only the result comes back
 *   setsid                setsid(): a new session id, as greetd's session worker makes
 *                         between pam_authenticate and pam_open_session (in a child if
 *                         this process leads its group; the rest of the steps run there)
 *   tty VALUE             pam_set_item PAM_TTY (":0" for an X display)
 *   pid                   print "@@ pid N" (this process, its session and process group)
 *   open / close          pam_setcred + pam_open_session / pam_close_session + pam_setcred
 *   chauthtok HEXOLD HEXNEW   pam_chauthtok answering old, new, new
 *   run CMD               /bin/sh -c CMD as USER (initgroups, setgid, setuid) in this session
 *   runas OTHER CMD       the same as another user
 *   end                   pam_end
 *   scan HEX              count copies of HEX's bytes in this process's writable memory
 *
 * Each step prints one line "@@ STEP RC TEXT" (open also "@@ open-ns NANOSECONDS" for the
 * benchmark: pam_setcred + pam_open_session); conversation messages print "@@ info: ..." or
 * "@@ error: ...". Output of commands passes through.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KEYCTL_JOIN_SESSION_KEYRING 1

static char answers[3][512];
static int n_answers, next_answer;
static pam_handle_t *pamh;
static int last_rc = PAM_SUCCESS;
static const char *service, *user;
static char *run_env[64];
static int n_run_env;

static void wipe(void *p, size_t n) { explicit_bzero(p, n); }

static int unhex(const char *hex, char *out, size_t cap) {
    size_t n = strlen(hex);
    if (n % 2 || n / 2 >= cap) return -1;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) return -1;
        out[i] = (char)v;
    }
    out[n / 2] = 0;
    return (int)(n / 2);
}

static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data) {
    (void)data;
    struct pam_response *r = calloc((size_t)n, sizeof *r);
    if (!r) return PAM_BUF_ERR;
    for (int i = 0; i < n; i++) {
        switch (msg[i]->msg_style) {
        case PAM_PROMPT_ECHO_OFF:
            if (next_answer >= n_answers) {
                printf("@@ error: unexpected prompt %s\n", msg[i]->msg);
                free(r);
                return PAM_CONV_ERR;
            }
            r[i].resp = strdup(answers[next_answer++]);
            break;
        case PAM_PROMPT_ECHO_ON:
            r[i].resp = strdup(user);
            break;
        case PAM_TEXT_INFO:
            printf("@@ info: %s\n", msg[i]->msg);
            break;
        case PAM_ERROR_MSG:
            printf("@@ error: %s\n", msg[i]->msg);
            break;
        }
    }
    fflush(stdout);
    *resp = r;
    return PAM_SUCCESS;
}

static struct pam_conv conversation = {conv, NULL};

static void ensure_started(void) {
    if (pamh) return;
    last_rc = pam_start(service, user, &conversation, &pamh);
    if (last_rc != PAM_SUCCESS) {
        printf("@@ start %d %s\n", last_rc, pam_strerror(NULL, last_rc));
        exit(1);
    }
}

static void set_answers(int n, char **hex) {
    n_answers = next_answer = 0;
    for (int i = 0; i < n; i++) {
        if (unhex(hex[i], answers[i], sizeof answers[i]) < 0) {
            printf("@@ error: bad hex\n");
            exit(2);
        }
        n_answers++;
    }
}

static void report(const char *step, int rc) {
    last_rc = rc;
    printf("@@ %s %d %s\n", step, rc, pam_strerror(pamh, rc));
    fflush(stdout);
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void run_as(const char *who, const char *cmd) {
    struct passwd *pw = getpwnam(who);
    if (!pw) {
        printf("@@ run -1 no user %s\n", who);
        return;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (initgroups(pw->pw_name, pw->pw_gid) || setgid(pw->pw_gid) || setuid(pw->pw_uid)) _exit(126);
        if (chdir(pw->pw_dir)) { if (chdir("/")) _exit(126); }
        char home[4200], usr[300], logname[300];
        snprintf(home, sizeof home, "HOME=%s", pw->pw_dir);
        snprintf(usr, sizeof usr, "USER=%s", pw->pw_name);
        snprintf(logname, sizeof logname, "LOGNAME=%s", pw->pw_name);
        char *envp[80] = {home, usr, logname, "PATH=/usr/local/bin:/usr/bin:/bin", 0};
        int k = 4;
        for (int i = 0; i < n_run_env && k < 78; i++) envp[k++] = run_env[i];
        envp[k] = 0;
        execle("/bin/sh", "sh", "-c", cmd, (char *)0, envp);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    printf("@@ run %d %s\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), cmd);
    fflush(stdout);
}

/* Copies of needle in this process's writable mappings, other than at `self`. */
static long scan(const char *needle, size_t n, const char *self) {
    FILE *maps = fopen("/proc/self/maps", "r");
    int mem = open("/proc/self/mem", O_RDONLY);
    char line[512];
    long found = 0;
    static char buf[1 << 20];
    while (maps && mem >= 0 && fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 || perms[0] != 'r' || perms[1] != 'w') continue;
        if (strstr(line, "[vvar") || strstr(line, "[vsyscall")) continue;
        for (unsigned long at = lo; at < hi;) {
            size_t want = hi - at < sizeof buf ? hi - at : sizeof buf;
            ssize_t got = pread(mem, buf, want, (off_t)at);
            if (got <= 0) break;
            for (ssize_t i = 0; i + (ssize_t)n <= got; i++) {
                if (memcmp(buf + i, needle, n) == 0 && (const char *)(at + i) != self) found++;
            }
            at += (unsigned long)got >= n ? (unsigned long)got - n + 1 : (unsigned long)got;
            if ((size_t)got < want) break;
        }
    }
    wipe(buf, sizeof buf);
    if (maps) fclose(maps);
    if (mem >= 0) close(mem);
    return found;
}

/* One line of stdin, unbuffered, into line (wiped by the caller). */
static int read_line(char *line, size_t cap) {
    size_t n = 0;
    char c;
    ssize_t r;
    while ((r = read(0, &c, 1)) == 1 && c != '\n')
        if (n + 1 < cap) line[n++] = c;
    line[n] = 0;
    return r == 1 || n > 0;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: pam-driver SERVICE USER < steps\n");
        return 2;
    }
    service = argv[1];
    user = argv[2];
    (void)setsid();
    if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0) {
        perror("pam-driver: join session keyring");
        return 1;
    }
    static char line[8192];
    while (read_line(line, sizeof line)) {
        char *words[4] = {0};
        int nw = 0;
        char *rest = line;
        /* The first word is the step; `run`/`putenv`/`env` keep the rest of the line whole. */
        words[nw++] = strsep(&rest, " ");
        if (rest && (!strcmp(words[0], "run") || !strcmp(words[0], "putenv") || !strcmp(words[0], "env"))) {
            words[nw++] = rest;
        } else if (rest && !strcmp(words[0], "runas")) {
            words[nw++] = strsep(&rest, " ");
            if (rest) words[nw++] = rest;
        } else {
            while (rest && nw < 4) words[nw++] = strsep(&rest, " ");
        }
        const char *step = words[0];
        if (!strcmp(step, "ruid")) {
            struct passwd *pw = getpwnam(user);
            report("ruid", pw && setreuid(pw->pw_uid, 0) == 0 ? PAM_SUCCESS : PAM_SYSTEM_ERR);
        } else if (!strcmp(step, "putenv") && nw == 2) {
            ensure_started();
            char *eq = strchr(words[1], '=');
            if (eq) { *eq = 0; setenv(words[1], eq + 1, 1); *eq = '='; }
            report("putenv", pam_putenv(pamh, words[1]));
        } else if (!strcmp(step, "env") && nw == 2 && n_run_env < 60) {
            run_env[n_run_env++] = strdup(words[1]);
            report("env", PAM_SUCCESS);
        } else if (!strcmp(step, "auth") && nw == 2) {
            ensure_started();
            set_answers(1, &words[1]);
            int rc = pam_authenticate(pamh, 0);
            if (rc == PAM_SUCCESS) rc = pam_acct_mgmt(pamh, 0);
            report("auth", rc);
        } else if (!strcmp(step, "forkauth") && nw == 2) {
            ensure_started();
            set_answers(1, &words[1]);
            fflush(stdout);
            pid_t child = fork();
            if (child == 0) {
                int rc = pam_authenticate(pamh, 0);
                if (rc == PAM_SUCCESS) rc = pam_acct_mgmt(pamh, 0);
                fflush(stdout);
                _exit(rc);
            }
            int status = 0;
            waitpid(child, &status, 0);
            report("forkauth", WIFEXITED(status) ? WEXITSTATUS(status) : PAM_SYSTEM_ERR);
        } else if (!strcmp(step, "setsid")) {
            /* A process group leader cannot setsid(): the driver goes on in a child (greetd's
             * worker is a forked child too), the parent waits and exits with its status. */
            fflush(stdout);
            pid_t child = getpgrp() == getpid() ? fork() : 0;
            if (child > 0) {
                int status = 0;
                waitpid(child, &status, 0);
                _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
            }
            report("setsid", child < 0 || setsid() < 0 ? errno : 0);
        } else if (!strcmp(step, "tty") && nw == 2) {
            ensure_started();
            report("tty", pam_set_item(pamh, PAM_TTY, words[1]));
        } else if (!strcmp(step, "pid")) {
            printf("@@ pid %d\n", (int)getpid());
            fflush(stdout);
        } else if (!strcmp(step, "open")) {
            ensure_started();
            long long t0 = now_ns();
            int rc = pam_setcred(pamh, PAM_ESTABLISH_CRED);
            if (rc == PAM_SUCCESS) rc = pam_open_session(pamh, 0);
            long long took = now_ns() - t0;
            report("open", rc);
            printf("@@ open-ns %lld\n", took);
            fflush(stdout);
        } else if (!strcmp(step, "close")) {
            ensure_started();
            int rc = pam_close_session(pamh, 0);
            pam_setcred(pamh, PAM_DELETE_CRED);
            report("close", rc);
        } else if (!strcmp(step, "chauthtok") && nw == 3) {
            ensure_started();
            char *hex[3] = {words[1], words[2], words[2]};
            set_answers(3, hex);
            report("chauthtok", pam_chauthtok(pamh, 0));
        } else if (!strcmp(step, "run") && nw == 2) {
            run_as(user, words[1]);
        } else if (!strcmp(step, "runas") && nw == 3) {
            run_as(words[1], words[2]);
        } else if (!strcmp(step, "end")) {
            if (pamh) report("end", pam_end(pamh, last_rc));
            pamh = NULL;
        } else if (!strcmp(step, "scan") && nw == 2) {
            static char needle[512];
            int n = unhex(words[1], needle, sizeof needle);
            wipe(line, sizeof line);
            long found = n > 0 ? scan(needle, (size_t)n, needle) : -1;
            wipe(needle, sizeof needle);
            printf("@@ scan %ld copies\n", found);
            fflush(stdout);
        } else {
            printf("@@ error: bad step %s\n", step);
            return 2;
        }
        wipe(answers, sizeof answers);
        wipe(line, sizeof line);
    }
    if (pamh) pam_end(pamh, last_rc);
    return 0;
}
