/* loop: a single-threaded epoll event loop with fd watches, monotonic timers
 * and a before-sleep hook (the shape of redis's ae).
 *
 * Watches and timers live in the caller's structs (no allocation per watch).
 * Callbacks run on the loop's thread and must not block. The before-sleep
 * hook runs once per wake-up after every ready fd has been handled: the relay
 * flushes all connections that gained output there, one writev each, which
 * turns per-packet work into per-batch work. Nothing the loop points at may
 * be freed while registered; free it after dc_io_stop()/dc_timer_stop(). */
#ifndef DC_COMMON_LOOP_H
#define DC_COMMON_LOOP_H

#include "err.h"

#include <stdbool.h>
#include <stdint.h>

struct dc_loop;
struct dc_io;
struct dc_timer;

/* Event bits for dc_io (same values as EPOLLIN/EPOLLOUT, plus hang-up/error). */
#define DC_IO_READ  0x001u
#define DC_IO_WRITE 0x004u
#define DC_IO_ERROR 0x008u
#define DC_IO_HUP   0x010u

typedef void (*dc_io_cb)(struct dc_loop *loop, struct dc_io *io, uint32_t events);
typedef void (*dc_timer_cb)(struct dc_loop *loop, struct dc_timer *timer);
typedef void (*dc_hook_cb)(struct dc_loop *loop, void *data);

/* An fd watch, embedded in its owner. All-zero is a valid idle watch. */
struct dc_io {
    int fd;          /* borrowed; the owner closes it after dc_io_stop() */
    uint32_t events; /* DC_IO_* currently asked for */
    bool is_active;  /* registered with epoll */
    dc_io_cb cb;     /* called with the ready DC_IO_* bits */
    void *data;      /* owner's pointer */
};

/* A one-shot timer, embedded in its owner. All-zero is a valid idle timer. */
struct dc_timer {
    uint64_t due_ms;       /* dc_now_ms() deadline */
    bool is_active;        /* on the loop's list */
    dc_timer_cb cb;        /* called once when due */
    void *data;            /* owner's pointer */
    struct dc_timer *next; /* loop's sorted list */
    struct dc_timer *prev;
};

/* Milliseconds from CLOCK_MONOTONIC: the only clock deadlines use. */
uint64_t dc_now_ms(void);

/* Creates a loop; returns NULL on failure (errno set). Free with dc_loop_free(). */
struct dc_loop *dc_loop_new(void);
/* Frees a loop; accepts NULL. Watches and timers must already be stopped. */
void dc_loop_free(struct dc_loop *loop);

/* Runs until dc_loop_stop(); returns 0, or negative errno if epoll fails. */
int dc_loop_run(struct dc_loop *loop) DC_MUST_CHECK;
/* Makes dc_loop_run() return after the current iteration. Safe from callbacks. */
void dc_loop_stop(struct dc_loop *loop);
/* Sets the hook called once per wake-up after fd callbacks (NULL removes it). */
void dc_loop_set_before_sleep(struct dc_loop *loop, dc_hook_cb cb, void *data);

/* Starts watching io->fd for `events` (DC_IO_READ|DC_IO_WRITE), or changes the
 * set if already watching. Returns 0 or negative errno. */
int dc_io_start(struct dc_loop *loop, struct dc_io *io, uint32_t events) DC_MUST_CHECK;
/* Stops watching; safe on an idle watch and from inside its own callback. */
void dc_io_stop(struct dc_loop *loop, struct dc_io *io);

/* Arms t to fire once after delay_ms (re-arms if active). */
void dc_timer_start(struct dc_loop *loop, struct dc_timer *t, uint64_t delay_ms);
/* Disarms t; safe on an idle timer and from inside its own callback. */
void dc_timer_stop(struct dc_loop *loop, struct dc_timer *t);

#endif
