#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

/* Ready events handled per epoll_wait call. */
#define LOOP_MAX_EVENTS 256

struct dc_loop {
    int epfd;                /* owned */
    bool is_stopping;        /* dc_loop_stop() was called */
    struct dc_timer *timers; /* sorted by due_ms, earliest first */
    dc_hook_cb before_sleep; /* may be NULL */
    void *before_sleep_data; /* borrowed */
    /* The batch being dispatched: dc_io_stop() clears entries here so a watch
     * stopped by an earlier callback in the same batch is never called. */
    struct epoll_event events[LOOP_MAX_EVENTS];
    int nevents;
};

uint64_t dc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct dc_loop *dc_loop_new(void)
{
    struct dc_loop *loop = calloc(1, sizeof(*loop));
    if (loop == NULL) {
        return NULL;
    }
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        int e = errno;
        free(loop);
        errno = e;
        return NULL;
    }
    return loop;
}

void dc_loop_free(struct dc_loop *loop)
{
    if (loop == NULL) {
        return;
    }
    close(loop->epfd);
    free(loop);
}

void dc_loop_stop(struct dc_loop *loop)
{
    loop->is_stopping = true;
}

void dc_loop_set_before_sleep(struct dc_loop *loop, dc_hook_cb cb, void *data)
{
    loop->before_sleep = cb;
    loop->before_sleep_data = data;
}

int dc_io_start(struct dc_loop *loop, struct dc_io *io, uint32_t events)
{
    struct epoll_event ev = {.events = 0, .data.ptr = io};
    if (events & DC_IO_READ) {
        ev.events |= EPOLLIN | EPOLLRDHUP;
    }
    if (events & DC_IO_WRITE) {
        ev.events |= EPOLLOUT;
    }
    if (io->is_active && io->events == events) {
        return 0;
    }
    int op = io->is_active ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(loop->epfd, op, io->fd, &ev) < 0) {
        return -errno;
    }
    io->is_active = true;
    io->events = events;
    return 0;
}

void dc_io_stop(struct dc_loop *loop, struct dc_io *io)
{
    if (!io->is_active) {
        return;
    }
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->is_active = false;
    io->events = 0;
    for (int i = 0; i < loop->nevents; i++) {
        if (loop->events[i].data.ptr == io) {
            loop->events[i].data.ptr = NULL;
        }
    }
}

void dc_timer_stop(struct dc_loop *loop, struct dc_timer *t)
{
    if (!t->is_active) {
        return;
    }
    if (t->prev != NULL) {
        t->prev->next = t->next;
    } else {
        loop->timers = t->next;
    }
    if (t->next != NULL) {
        t->next->prev = t->prev;
    }
    t->next = t->prev = NULL;
    t->is_active = false;
}

void dc_timer_start(struct dc_loop *loop, struct dc_timer *t, uint64_t delay_ms)
{
    dc_timer_stop(loop, t);
    t->due_ms = dc_now_ms() + delay_ms;
    t->is_active = true;
    struct dc_timer *prev = NULL;
    struct dc_timer *cur = loop->timers;
    while (cur != NULL && cur->due_ms <= t->due_ms) {
        prev = cur;
        cur = cur->next;
    }
    t->prev = prev;
    t->next = cur;
    if (cur != NULL) {
        cur->prev = t;
    }
    if (prev != NULL) {
        prev->next = t;
    } else {
        loop->timers = t;
    }
}

static int next_timeout_ms(struct dc_loop *loop)
{
    if (loop->timers == NULL) {
        return -1;
    }
    uint64_t now = dc_now_ms();
    if (loop->timers->due_ms <= now) {
        return 0;
    }
    uint64_t wait = loop->timers->due_ms - now;
    return wait > 60000 ? 60000 : (int)wait;
}

static void run_due_timers(struct dc_loop *loop)
{
    uint64_t now = dc_now_ms();
    while (loop->timers != NULL && loop->timers->due_ms <= now && !loop->is_stopping) {
        struct dc_timer *t = loop->timers;
        dc_timer_stop(loop, t);
        t->cb(loop, t);
    }
}

static uint32_t to_dc_events(uint32_t ev)
{
    uint32_t out = 0;
    if (ev & (EPOLLIN | EPOLLRDHUP)) {
        out |= DC_IO_READ;
    }
    if (ev & EPOLLOUT) {
        out |= DC_IO_WRITE;
    }
    if (ev & EPOLLERR) {
        out |= DC_IO_ERROR | DC_IO_READ;
    }
    if (ev & EPOLLHUP) {
        out |= DC_IO_HUP | DC_IO_READ;
    }
    return out;
}

int dc_loop_run(struct dc_loop *loop)
{
    loop->is_stopping = false;
    while (!loop->is_stopping) {
        int n = epoll_wait(loop->epfd, loop->events, LOOP_MAX_EVENTS, next_timeout_ms(loop));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        loop->nevents = n;
        for (int i = 0; i < n; i++) {
            struct dc_io *io = loop->events[i].data.ptr;
            if (io == NULL) {
                continue; /* stopped by an earlier callback in this batch */
            }
            io->cb(loop, io, to_dc_events(loop->events[i].events));
        }
        loop->nevents = 0;
        run_due_timers(loop);
        if (loop->before_sleep != NULL) {
            loop->before_sleep(loop, loop->before_sleep_data);
        }
    }
    return 0;
}
