#include "source_dir.h"

#include "cluster_yaml.h"
#include "log.h"
#include "loop.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

/* One Cluster found in a file; strings owned. */
struct found {
    char *name, *display_name, *endpoint, *insecure, *origin;
    size_t order; /* position in the scan: the first definition of a name wins */
};

/* A problem already reported, so a rescan does not repeat it. */
struct reported {
    char *text; /* owned */
};

struct source_dir {
    struct dc_loop *loop;
    char *dir;       /* owned */
    struct dc_io io; /* inotify fd */
    struct dc_timer debounce;
    struct dc_timer rescan;
    source_dir_cb cb;
    void *arg;
    struct found *found; /* current scan, owned */
    size_t nfound, capfound;
    const char *cur_file; /* file being parsed (for callbacks) */
    char **problems;      /* problems seen in this scan, owned */
    size_t nproblems, capproblems;
    char **old_problems; /* previous scan's, owned */
    size_t nold;
};

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static void found_clear(struct source_dir *sd)
{
    for (size_t i = 0; i < sd->nfound; i++) {
        free(sd->found[i].name);
        free(sd->found[i].display_name);
        free(sd->found[i].endpoint);
        free(sd->found[i].insecure);
        free(sd->found[i].origin);
    }
    sd->nfound = 0;
}

static void problems_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

/* Logs text unless the previous scan already did; remembers it either way. */
static void problem(struct source_dir *sd, const char *text)
{
    bool seen = false;
    for (size_t i = 0; i < sd->nold && !seen; i++) {
        seen = strcmp(sd->old_problems[i], text) == 0;
    }
    if (!seen) {
        dc_log(DC_LOG_WARN, "derp-map", "%s", text);
    }
    if (sd->nproblems == sd->capproblems) {
        size_t cap = sd->capproblems == 0 ? 16 : sd->capproblems * 2;
        char **v = realloc(sd->problems, cap * sizeof(*v));
        if (v == NULL) {
            return;
        }
        sd->problems = v;
        sd->capproblems = cap;
    }
    char *copy = strdup(text);
    if (copy != NULL) {
        sd->problems[sd->nproblems++] = copy;
    }
}

static void on_doc(void *arg, const struct cluster_doc *doc, size_t index, int line,
                   const char *err)
{
    struct source_dir *sd = arg;
    char text[DC_ERR_LEN + 512];
    if (doc == NULL) {
        (void)index;
        (void)line; /* err already names the document and its line */
        snprintf(text, sizeof(text), "file %s: skipped %s", sd->cur_file, err);
        problem(sd, text);
        return;
    }
    if (sd->nfound == sd->capfound) {
        size_t cap = sd->capfound == 0 ? 64 : sd->capfound * 2;
        struct found *v = realloc(sd->found, cap * sizeof(*v));
        if (v == NULL) {
            return;
        }
        sd->found = v;
        sd->capfound = cap;
    }
    struct found *f = &sd->found[sd->nfound++];
    f->name = strdup(doc->name);
    f->display_name = dup_or_null(doc->display_name);
    f->endpoint = dup_or_null(doc->endpoint);
    f->insecure = dup_or_null(doc->insecure);
    f->origin = strdup(sd->cur_file);
    f->order = sd->nfound;
}

static bool is_yaml_name(const char *name)
{
    size_t n = strlen(name);
    if (name[0] == '.') {
        return false; /* hidden: editors' temporary files */
    }
    return (n > 5 && strcmp(name + n - 5, ".yaml") == 0) ||
           (n > 4 && strcmp(name + n - 4, ".yml") == 0);
}

static void scan_file(struct source_dir *sd, const char *name)
{
    char path[4096];
    char text[DC_ERR_LEN + 512];
    if (snprintf(path, sizeof(path), "%s/%s", sd->dir, name) >= (int)sizeof(path)) {
        return;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) {
            close(fd);
        }
        return; /* vanished or not a regular file */
    }
    if ((uint64_t)st.st_size > SOURCE_DIR_MAX_FILE) {
        close(fd);
        snprintf(text, sizeof(text), "file %s: larger than %u bytes; skipped", name,
                 SOURCE_DIR_MAX_FILE);
        problem(sd, text);
        return;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    ssize_t n = buf != NULL ? read(fd, buf, (size_t)st.st_size) : -1;
    close(fd);
    if (n < 0) {
        free(buf);
        return;
    }
    char err[DC_ERR_LEN];
    sd->cur_file = name;
    if (cluster_yaml_parse(buf, (size_t)n, on_doc, sd, err) < 0) {
        snprintf(text, sizeof(text), "file %s: %s", name, err);
        problem(sd, text);
    }
    free(buf);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int found_cmp(const void *a, const void *b)
{
    const struct found *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c != 0 ? c : (x->order > y->order) - (x->order < y->order);
}

/* Sorts the scan by name and keeps the first definition of each name (in
 * file order): n log n, so 10 000 Clusters cost nothing here. */
static void drop_duplicates(struct source_dir *sd)
{
    if (sd->nfound > 1) {
        qsort(sd->found, sd->nfound, sizeof(*sd->found), found_cmp);
    }
    size_t out = 0;
    for (size_t i = 0; i < sd->nfound; i++) {
        struct found *f = &sd->found[i];
        if (out > 0 && strcmp(sd->found[out - 1].name, f->name) == 0) {
            char text[DC_ERR_LEN + 512];
            snprintf(text, sizeof(text), "file %s: cluster %s is already defined in %s; ignored",
                     f->origin, f->name, sd->found[out - 1].origin);
            problem(sd, text);
            free(f->name);
            free(f->display_name);
            free(f->endpoint);
            free(f->insecure);
            free(f->origin);
            continue;
        }
        sd->found[out++] = *f;
    }
    sd->nfound = out;
}

static void scan(struct source_dir *sd)
{
    found_clear(sd);
    DIR *d = opendir(sd->dir);
    if (d == NULL) {
        dc_log(DC_LOG_WARN, "derp-map", "clusters dir %s: %s; keeping the last map", sd->dir,
               strerror(errno));
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!is_yaml_name(de->d_name)) {
            continue;
        }
        if (n == cap) {
            cap = cap == 0 ? 64 : cap * 2;
            char **v = realloc(names, cap * sizeof(*v));
            if (v == NULL) {
                break;
            }
            names = v;
        }
        names[n] = strdup(de->d_name);
        n += names[n] != NULL ? 1 : 0;
    }
    closedir(d);
    if (n > 1) {
        qsort(names, n, sizeof(*names), name_cmp); /* first file in name order wins */
    }
    for (size_t i = 0; i < n; i++) {
        scan_file(sd, names[i]);
        free(names[i]);
    }
    free(names);
    drop_duplicates(sd);
    problems_free(sd->old_problems, sd->nold);
    sd->old_problems = sd->problems;
    sd->nold = sd->nproblems;
    sd->problems = NULL;
    sd->nproblems = sd->capproblems = 0;
    struct cluster_input *in = calloc(sd->nfound + 1, sizeof(*in));
    if (in == NULL) {
        return;
    }
    for (size_t i = 0; i < sd->nfound; i++) {
        in[i] = (struct cluster_input){.name = sd->found[i].name,
                                       .display_name = sd->found[i].display_name,
                                       .endpoint = sd->found[i].endpoint,
                                       .insecure = sd->found[i].insecure,
                                       .origin = sd->found[i].origin};
    }
    sd->cb(sd->arg, in, sd->nfound);
    free(in);
}

static void timer_cb(struct dc_loop *loop, struct dc_timer *t)
{
    struct source_dir *sd = t->data;
    scan(sd);
    dc_timer_start(loop, &sd->rescan, SOURCE_DIR_RESCAN_MS);
}

static void inotify_cb(struct dc_loop *loop, struct dc_io *io, uint32_t events)
{
    (void)events;
    struct source_dir *sd = io->data;
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    while (read(io->fd, buf, sizeof(buf)) > 0) {
        /* Which file changed does not matter: the whole directory is rescanned. */
    }
    if (!sd->debounce.is_active) {
        dc_timer_start(loop, &sd->debounce, SOURCE_DIR_DEBOUNCE_MS);
    }
}

int source_dir_start(struct dc_loop *loop, const char *dir, source_dir_cb cb, void *arg,
                     struct source_dir **out, char *err)
{
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        return dc_err_set(err, -ENOTDIR, "--clusters-dir `%s': %s", dir,
                          errno != 0 ? strerror(errno) : "not a directory");
    }
    struct source_dir *sd = calloc(1, sizeof(*sd));
    if (sd == NULL || (sd->dir = strdup(dir)) == NULL) {
        free(sd);
        return dc_err_set(err, -ENOMEM, "out of memory");
    }
    sd->loop = loop;
    sd->cb = cb;
    sd->arg = arg;
    sd->io.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    uint32_t mask = IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM |
                    IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;
    if (sd->io.fd < 0 || inotify_add_watch(sd->io.fd, dir, mask) < 0) {
        int rc = dc_err_set(err, -errno, "--clusters-dir `%s': inotify: %s", dir, strerror(errno));
        source_dir_free(sd);
        return rc;
    }
    sd->io.cb = inotify_cb;
    sd->io.data = sd;
    sd->debounce.cb = timer_cb;
    sd->debounce.data = sd;
    sd->rescan.cb = timer_cb;
    sd->rescan.data = sd;
    int rc = dc_io_start(loop, &sd->io, DC_IO_READ);
    if (rc < 0) {
        source_dir_free(sd);
        return dc_err_set(err, rc, "epoll: %s", dc_strerror(rc));
    }
    *out = sd;
    scan(sd);
    dc_timer_start(loop, &sd->rescan, SOURCE_DIR_RESCAN_MS);
    return 0;
}

void source_dir_free(struct source_dir *sd)
{
    if (sd == NULL) {
        return;
    }
    if (sd->io.is_active) {
        dc_io_stop(sd->loop, &sd->io);
    }
    if (sd->io.fd > 0) {
        close(sd->io.fd);
    }
    dc_timer_stop(sd->loop, &sd->debounce);
    dc_timer_stop(sd->loop, &sd->rescan);
    found_clear(sd);
    free(sd->found);
    problems_free(sd->problems, sd->nproblems);
    problems_free(sd->old_problems, sd->nold);
    free(sd->dir);
    free(sd);
}

void source_dir_rescan(struct source_dir *sd)
{
    if (!sd->debounce.is_active) {
        dc_timer_start(sd->loop, &sd->debounce, 0);
    }
}
