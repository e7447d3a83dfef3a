/* apiserver_fixture: see apiserver_fixture.h. */
#include "apiserver_fixture.h"

#include "buf.h"
#include "loop.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>

#include <cmocka.h>

static bool is_server_root(const char *dir)
{
    char path[PATH_LEN];
    int n = snprintf(path, sizeof(path), "%s/tests/apiserver/run", dir);
    return n > 0 && (size_t)n < sizeof(path) && access(path, X_OK) == 0;
}

static bool walk_up(char *dir)
{
    while (dir[0] != '\0') {
        if (is_server_root(dir)) {
            return true;
        }
        char *slash = strrchr(dir, '/');
        if (slash == NULL || slash == dir) {
            break;
        }
        *slash = '\0';
    }
    return false;
}

/* The repository root: from this file's compile-time path (CMake compiles absolute paths),
 * else walking up from the working directory or the executable. */
static bool find_repo_root(char *out, size_t len)
{
    const char *file = __FILE__;
    const char *tail = strstr(file, "/tests/unit/");
    if (tail != NULL && (size_t)(tail - file) < len) {
        memcpy(out, file, (size_t)(tail - file));
        out[tail - file] = '\0';
        if (is_server_root(out)) {
            return true;
        }
    }
    if (getcwd(out, len) != NULL && walk_up(out)) {
        return true;
    }
    ssize_t n = readlink("/proc/self/exe", out, len - 1);
    if (n > 0) {
        out[n] = '\0';
        if (walk_up(out)) {
            return true;
        }
    }
    return false;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void server_stop(struct server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        int status = 0;
        for (int i = 0; i < 500; i++) {
            if (waitpid(s->pid, &status, WNOHANG) != 0) {
                s->pid = -1;
                break;
            }
            usleep(10000);
        }
        if (s->pid > 0) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &status, 0);
        }
    }
    s->pid = -1;
    if (s->out_fd >= 0) {
        close(s->out_fd);
        s->out_fd = -1;
    }
    if (s->dir[0] != '\0') {
        nftw(s->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        s->dir[0] = '\0';
    }
}

static bool parse_int_line(const char *line, const char *key, int *out)
{
    size_t klen = strlen(key);
    if (strncmp(line, key, klen) != 0 || line[klen] != ' ') {
        return false;
    }
    char *end = NULL;
    unsigned long v = strtoul(line + klen + 1, &end, 10);
    if (end == line + klen + 1 || v > 65535) {
        return false;
    }
    *out = (int)v;
    return true;
}

/* Reads the server's announcement lines until "ready". */
static int server_read_banner(struct server *s)
{
    char buf[4096];
    size_t used = 0;
    uint64_t deadline = dc_now_ms() + SERVER_START_MS;
    for (;;) {
        char *nl = memchr(buf, '\n', used);
        while (nl != NULL) {
            *nl = '\0';
            if (strcmp(buf, "ready") == 0) {
                return s->port > 0 && s->control_port > 0 ? 0 : -1;
            }
            if (strncmp(buf, "token ", 6) == 0) {
                size_t tlen = strlen(buf + 6);
                if (tlen < sizeof(s->token)) {
                    memcpy(s->token, buf + 6, tlen + 1);
                }
            }
            (void)(parse_int_line(buf, "port", &s->port) ||
                   parse_int_line(buf, "control-port", &s->control_port));
            size_t line_len = (size_t)(nl - buf) + 1;
            memmove(buf, nl + 1, used - line_len);
            used -= line_len;
            nl = memchr(buf, '\n', used);
        }
        uint64_t now = dc_now_ms();
        if (now >= deadline || used == sizeof(buf)) {
            return -1;
        }
        struct pollfd pfd = {.fd = s->out_fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(deadline - now)) <= 0) {
            return -1;
        }
        ssize_t n = read(s->out_fd, buf + used, sizeof(buf) - used);
        if (n <= 0) {
            return -1;
        }
        used += (size_t)n;
    }
}

int server_start(struct server *s, const char *name)
{
    memset(s, 0, sizeof(*s));
    s->pid = -1;
    s->out_fd = -1;
    char root[PATH_LEN];
    if (!find_repo_root(root, sizeof(root))) {
        snprintf(s->why, sizeof(s->why), "tests/apiserver/run not found above %s", __FILE__);
        return -1;
    }
    snprintf(s->dir, sizeof(s->dir), "/tmp/%s.XXXXXX", name);
    if (mkdtemp(s->dir) == NULL) {
        snprintf(s->why, sizeof(s->why), "mkdtemp: %s", strerror(errno));
        s->dir[0] = '\0';
        return -1;
    }
    char run[PATH_LEN + 32], pki[PATH_LEN], log[PATH_LEN];
    snprintf(run, sizeof(run), "%s/tests/apiserver/run", root);
    snprintf(s->kubeconfig, sizeof(s->kubeconfig), "%s/kubeconfig", s->dir);
    snprintf(pki, sizeof(pki), "%s/pki", s->dir);
    snprintf(log, sizeof(log), "%s/server.log", s->dir);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        snprintf(s->why, sizeof(s->why), "pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        int logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fds[1], STDOUT_FILENO);
        if (logfd >= 0) {
            dup2(logfd, STDERR_FILENO);
        }
        execl(run, run, "--port", "0", "--control-port", "0", "--kubeconfig-out", s->kubeconfig,
              "--pki-dir", pki, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        snprintf(s->why, sizeof(s->why), "fork: %s", strerror(errno));
        return -1;
    }
    s->pid = pid;
    s->out_fd = fds[0];
    if (server_read_banner(s) < 0) {
        /* Quote the start of its stderr: the directory goes away with server_stop(). */
        char head[160] = "";
        int fd = open(log, O_RDONLY);
        ssize_t n = fd >= 0 ? read(fd, head, sizeof(head) - 1) : -1;
        head[n > 0 ? n : 0] = '\0';
        for (char *p = head; *p != '\0'; p++) {
            *p = (*p == '\n' || *p == '\r') ? ' ' : *p;
        }
        if (fd >= 0) {
            close(fd);
        }
        snprintf(s->why, sizeof(s->why),
                 "tests/apiserver/run did not start (is python3 installed?): %s", head);
        return -1;
    }
    return 0;
}

static size_t ctl_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct dc_buf *b = userdata;
    return dc_buf_append(b, ptr, size * nmemb) == 0 ? size * nmemb : 0;
}

/* A blocking request to the control port (test code only); returns the HTTP status. The body,
 * NUL-terminated, goes to out when out is not NULL (caller frees it). */
long ctl(const struct server *s, const char *method, const char *path, const char *body, char **out)
{
    char url[PATH_LEN];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", s->control_port, path);
    struct dc_buf b = {0};
    dc_buf_init(&b, 16u << 20);
    CURL *e = curl_easy_init();
    assert_non_null(e);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, ctl_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
    if (body != NULL) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    }
    long status = 0;
    assert_int_equal(curl_easy_perform(e), CURLE_OK);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    if (out != NULL) {
        assert_int_equal(dc_buf_append(&b, "", 1), 0);
        *out = (char *)b.p;
        b.p = NULL;
    }
    dc_buf_deinit(&b);
    return status;
}

void fault(const struct server *s, const char *rule)
{
    long status = ctl(s, "POST", "/__test/faults", rule, NULL);
    assert_true(status == 200 || status == 201);
}
