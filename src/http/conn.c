/*
 * src/http/conn.c -- a record per client connection: the open-connection
 * limit, the request deadline (slow-loris), eviction of idle connections.
 *
 * libevent 2.1's evhttp has no hook for "connection opened" (the request
 * callback only comes once a whole request is read, which an idle or slow
 * client never sends) and its timeouts are idle timeouts, which a client
 * sending one header byte per second never trips.  What it has:
 * - evhttp_set_bevcb: we make the bufferevent of each new connection (a
 *   plain socket bufferevent, as evhttp would) -- that is "opened";
 * - evhttp_connection_set_closecb: called from evhttp_connection_free,
 *   whatever the reason -- that is "closed".  It needs the connection
 *   object, which does not exist yet when bevcb runs.  evhttp creates it
 *   right after, synchronously, and installs its callbacks on our
 *   bufferevent with the connection as their argument; so on the next
 *   loop turn ("adopt") we read it back with bufferevent_getcb, check it
 *   with evhttp_connection_get_bufferevent, and set the close callback.
 *   Until then we hold a reference on the bufferevent, so that a
 *   connection freed before adoption cannot leave us a dangling pointer.
 *
 * Policy:
 * - Deadline: a connection that is not busy (no request of it is being
 *   answered) must deliver a complete request within --request-timeout,
 *   counted from the accept or from the previous reply.  That bounds a
 *   slow-loris client to one timeout per connection, and an idle
 *   keep-alive connection likewise.  While a request is being answered
 *   (a long poll, for days) there is no deadline: evhttp is not reading.
 * - Limit: past --max-connections, the connection idle for the longest is
 *   closed to make room (an attacker holding idle connections cannot lock
 *   out real clients); if every connection is busy, the new one is closed.
 *   A burst of accepts can overshoot the limit by the listen backlog until
 *   the closes run on the next loop turn.
 * - Closing is done by raising a read timeout on the bufferevent, which
 *   makes evhttp drop the connection the way its own timeout does.
 */
#include "serve.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>

struct srv_conn {
    srv *s;
    struct bufferevent *bev;   /* evhttp's bufferevent for it; the key */
    struct event *timer;       /* deadline, or immediate close */
    struct event *adopt_ev;
    srv_conn *hnext;           /* hash chain */
    srv_conn *prev, *next;     /* idle list, oldest first */
    srv_job *job;              /* job answering its request, or NULL */
    int adopted;               /* close callback set; our reference dropped */
    int busy;                  /* a request of it is being answered */
    int idle_listed;
    int doomed;                /* 1: evicted (over the limit); 2: refused */
};

struct srv_conns {
    srv_conn **bucket;
    size_t nbucket;            /* power of two */
    srv_conn *idle_head, *idle_tail;
    size_t open;
    int64_t warned_ms;         /* last "limit reached" log line */
};

static size_t slot(const srv_conns *t, const void *bev)
{
    uint64_t h = (uint64_t)(uintptr_t)bev * 0x9E3779B97F4A7C15ULL;
    return (size_t)(h >> 32) & (t->nbucket - 1);
}

static srv_conn *lookup(const srv_conns *t, const struct bufferevent *bev)
{
    for (srv_conn *c = t->bucket[slot(t, bev)]; c; c = c->hnext)
        if (c->bev == bev)
            return c;
    return NULL;
}

static void idle_remove(srv_conns *t, srv_conn *c)
{
    if (!c->idle_listed)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        t->idle_head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        t->idle_tail = c->prev;
    c->prev = c->next = NULL;
    c->idle_listed = 0;
}

static void idle_push(srv_conns *t, srv_conn *c)
{
    idle_remove(t, c);
    c->prev = t->idle_tail;
    c->next = NULL;
    if (t->idle_tail)
        t->idle_tail->next = c;
    else
        t->idle_head = c;
    t->idle_tail = c;
    c->idle_listed = 1;
}

static void arm_deadline(srv_conn *c)
{
    int64_t ms = c->s->lim.request_timeout_ms;
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

/* Forget the record (the connection is gone). */
static void drop(srv_conn *c)
{
    srv_conns *t = c->s->conns;
    srv_conn **pp = &t->bucket[slot(t, c->bev)];
    while (*pp && *pp != c)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = c->hnext;
    idle_remove(t, c);
    if (c->job)
        c->job->conn = NULL;
    event_free(c->timer);
    event_free(c->adopt_ev);
    t->open--;
    if (!c->adopted)
        bufferevent_decref(c->bev);
    free(c);
}

static void on_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    drop(arg);
}

/* 1 when the record is adopted (close callback set), 0 when the
 * connection was already gone and the record is freed. */
static int adopt(srv_conn *c)
{
    if (c->adopted)
        return 1;
    bufferevent_event_cb ecb = NULL;
    void *arg = NULL;
    bufferevent_getcb(c->bev, NULL, NULL, &ecb, &arg);
    struct evhttp_connection *evcon = arg;
    if (!ecb || !evcon || evhttp_connection_get_bufferevent(evcon) != c->bev) {
        /* bufferevent_free clears the callbacks: evhttp let it go. */
        drop(c);
        return 0;
    }
    evhttp_connection_set_closecb(evcon, on_close, c);
    c->adopted = 1;
    bufferevent_decref(c->bev);
    return 1;
}

static void on_adopt(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    adopt(arg);
}

static void doom(srv_conn *c, int why)
{
    static const struct timeval now = {0, 0};
    idle_remove(c->s->conns, c);
    c->doomed = why;
    evtimer_add(c->timer, &now);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    srv_conn *c = arg;
    srv *s = c->s;
    (void)fd;
    (void)what;
    if (!adopt(c))
        return;
    /* A request may have arrived between the decision and now: it is
     * answered; the limit is enforced again at the next accept. */
    if (c->busy)
        return;
    if (c->doomed == 2)
        s->metrics.conns_refused++;
    else
        s->metrics.conns_evicted++;
    /* evhttp treats this like its own read timeout and frees the
     * connection; on_close frees c (and this timer) on the way. */
    bufferevent_trigger_event(c->bev, BEV_EVENT_READING | BEV_EVENT_TIMEOUT, 0);
}

static void warn_limit(srv *s)
{
    srv_conns *t = s->conns;
    int64_t now = srv_mono_ms();
    if (t->warned_ms && now - t->warned_ms < 10000)
        return;
    t->warned_ms = now;
    char a[32], b[32], e[32], r[32];
    srv_log("warn", "connection_limit", "open", srv_num(a, sizeof a, (long long)t->open), "max",
            srv_num(b, sizeof b, s->lim.max_conns), "evicted_total",
            srv_num(e, sizeof e, (long long)s->metrics.conns_evicted), "refused_total",
            srv_num(r, sizeof r, (long long)s->metrics.conns_refused), NULL);
}

static struct bufferevent *make_bev(struct event_base *base, void *arg)
{
    srv *s = arg;
    srv_conns *t = s->conns;
    srv_conn *c = calloc(1, sizeof *c);
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!c || !bev)
        goto fail;
    c->s = s;
    c->bev = bev;
    c->timer = evtimer_new(base, on_timer, c);
    c->adopt_ev = event_new(base, -1, 0, on_adopt, c);
    if (!c->timer || !c->adopt_ev)
        goto fail;
    bufferevent_incref(bev); /* until adopted: see the file comment */
    c->hnext = t->bucket[slot(t, bev)];
    t->bucket[slot(t, bev)] = c;
    t->open++;
    s->metrics.conns_accepted++;
    idle_push(t, c);
    arm_deadline(c);
    event_active(c->adopt_ev, EV_TIMEOUT, 0);
    if (t->open > (size_t)s->lim.max_conns) {
        srv_conn *victim = t->idle_head;
        while (victim && victim == c)
            victim = victim->next;
        if (victim)
            doom(victim, 1);
        else
            doom(c, 2);
        warn_limit(s);
    }
    return bev;

fail:
    /* NULL makes evhttp create a bufferevent of its own: that connection
     * is served but not tracked, which only happens when memory is short. */
    if (bev)
        bufferevent_free(bev);
    if (c) {
        if (c->timer)
            event_free(c->timer);
        if (c->adopt_ev)
            event_free(c->adopt_ev);
        free(c);
    }
    return NULL;
}

int srv_conns_init(srv *s)
{
    srv_conns *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    t->nbucket = 64;
    while (t->nbucket < (size_t)s->lim.max_conns && t->nbucket < (1u << 20))
        t->nbucket <<= 1;
    t->bucket = calloc(t->nbucket, sizeof *t->bucket);
    if (!t->bucket) {
        free(t);
        return -1;
    }
    s->conns = t;
    evhttp_set_bevcb(s->http, make_bev, s);
    return 0;
}

void srv_conns_free(srv *s)
{
    srv_conns *t = s->conns;
    if (!t)
        return;
    if (t->open != 0) {
        char n[32];
        srv_log("warn", "connections_leaked", "open", srv_num(n, sizeof n, (long long)t->open),
                NULL);
    }
    free(t->bucket);
    free(t);
    s->conns = NULL;
}

size_t srv_conns_open(const srv *s)
{
    return s->conns ? s->conns->open : 0;
}

srv_conn *srv_conn_busy(srv *s, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (!evcon)
        return NULL;
    srv_conn *c = lookup(s->conns, evhttp_connection_get_bufferevent(evcon));
    if (!c || !adopt(c))
        return NULL;
    idle_remove(s->conns, c);
    evtimer_del(c->timer);
    c->doomed = 0;
    c->busy = 1;
    return c;
}

void srv_conn_attach(srv_conn *c, srv_job *j)
{
    j->conn = c;
    if (c)
        c->job = j;
}

void srv_conn_idle(srv *s, srv_conn *c)
{
    if (!c)
        return;
    if (c->job)
        c->job->conn = NULL;
    c->job = NULL;
    c->busy = 0;
    idle_push(s->conns, c);
    arm_deadline(c);
}

int srv_conn_client_gone(const srv_conn *c)
{
    /* evhttp does not read while a request is being answered, so a close
     * by the client is only visible on the socket itself.  MSG_PEEK: a
     * pipelined next request stays for evhttp to read. */
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    if (fd < 0)
        return 0;
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return 1;
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}
