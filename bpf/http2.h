/* HTTP/2 (and gRPC) frame following; included by agent.c.
 *
 * Per connection and direction the kernel follows the frame boundaries of the
 * cleartext HTTP/2 byte stream across TCP segments (by sequence number: a
 * retransmitted byte is seen once, a gap ends the following), reading only
 * the 9-byte frame headers and skipping every payload by its length. Only the
 * frames user space needs leave the kernel, through the h2_events ring
 * buffer: HEADERS, CONTINUATION and PUSH_PROMISE whole (their header block
 * fragments keep the connection's HPACK tables in step; at most H2_COPY_MAX
 * payload bytes each), and the frame header alone of a response's DATA frame
 * that ends its stream and of RST_STREAM. A frame split over segments goes out in
 * pieces, the first carrying the frame header. When a record cannot be sent
 * (the ring buffer is full), a header frame is over the bound or the stream
 * has a gap, the connection is marked lost: nothing more of it is sent but one
 * H2_EV_LOST record, and user space stops counting it. */

#define H2_COPY_MAX 4096 /* payload bytes of one copied frame, at most */
#define H2_PREFACE 24    /* "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" */
#define H2_MAX_STEPS 4096

enum { H2_EV_PIECE = 1, H2_EV_MARK = 2, H2_EV_LOST = 3, H2_EV_CLOSE = 4 };

/* What user space reads; keep in step with http2.go. */
struct h2_event {
	__u64 cookie; /* the socket's */
	__u64 cgid;   /* the socket's cgroup */
	__u64 ts;     /* CLOCK_MONOTONIC ns of the segment */
	__u16 len;    /* bytes in data */
	__u8 kind;    /* H2_EV_* */
	__u8 dir;     /* 0: client to server (requests), 1: server to client */
	__u8 side;    /* 0: the server's socket, 1: the client's */
	__u8 hdr[9];  /* the frame header, when first */
	__u8 first;   /* the piece starts a frame */
	__u8 lost;    /* H2_EV_CLOSE: the connection was lost before */
	__u8 data[H2_COPY_MAX];
};

#define H2_EVENT_HEAD 40 /* offsetof(struct h2_event, data) */

struct h2_dir {
	__u32 next_seq; /* sequence number of the next byte to follow */
	__u32 left;     /* payload bytes of the current frame still to come */
	__u8 hdr[9];    /* the current frame's header (also while split) */
	__u8 have;      /* bytes of hdr held while it is split */
	__u8 copy;      /* the current frame's payload goes to user space */
	__u8 first;     /* its next piece is its first */
	__u8 started;   /* next_seq is known */
	__u8 preface;   /* client preface bytes still to skip */
	__u8 pad[2];
};

struct h2_conn {
	struct h2_dir d[2]; /* by direction: 0 ingress, 1 egress */
	__u64 cgid;
	__u8 role; /* 1 server, 2 client (as sk_state.role) */
	__u8 lost;
	__u8 told; /* H2_EV_LOST went out */
	__u8 pad[5];
};

volatile const __u32 h2_wake_bytes = 64 << 10;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20); /* set by the loader */
} h2_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384); /* set by the loader */
	__type(key, __u64);         /* socket cookie */
	__type(value, struct h2_conn);
} h2_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct h2_event);
} h2_scratch SEC(".maps");

/* Sends the event's first H2_EVENT_HEAD + len bytes; 0 on success. Wakes the
 * reader only once h2_wake_bytes wait (it also polls). */
static __always_inline int h2_send(struct h2_event *ev, __u32 len)
{
	if (len > H2_COPY_MAX)
		return -1;
	__u64 flags = bpf_ringbuf_query(&h2_events, BPF_RB_AVAIL_DATA) >= h2_wake_bytes ? BPF_RB_FORCE_WAKEUP
											: BPF_RB_NO_WAKEUP;
	return bpf_ringbuf_output(&h2_events, ev, H2_EVENT_HEAD + len, flags) ? -1 : 0;
}

static __always_inline struct h2_event *h2_event_for(__u64 cookie, struct h2_conn *hc, __u8 kind, __u8 dir, __u64 ts)
{
	__u32 k = 0;
	struct h2_event *ev = bpf_map_lookup_elem(&h2_scratch, &k);
	if (!ev)
		return 0;
	ev->cookie = cookie;
	ev->cgid = hc->cgid;
	ev->ts = ts;
	ev->len = 0;
	ev->kind = kind;
	ev->dir = dir;
	ev->side = hc->role == 2 ? 1 : 0;
	ev->first = 0;
	ev->lost = hc->lost;
	return ev;
}

/* Marks the connection lost and tells user space if the ring has room. */
static __always_inline void h2_lose(__u64 cookie, struct h2_conn *hc, __u64 ts)
{
	hc->lost = 1;
	if (hc->told)
		return;
	struct h2_event *ev = h2_event_for(cookie, hc, H2_EV_LOST, 0, ts);
	if (ev && h2_send(ev, 0) == 0)
		hc->told = 1;
}

struct h2_walk {
	struct __sk_buff *skb;
	struct h2_conn *hc;
	__u64 cookie;
	__u64 ts;
	__u32 off;  /* payload offset in the skb */
	__u32 plen; /* payload length */
	__u32 pos;  /* next payload byte to follow */
	__u8 eg;    /* index into hc->d */
	__u8 dir;   /* the event's dir */
};

/* Sends a piece of the current frame: its header when it is the first
 * piece, and n payload bytes from the segment when copying. */
static __always_inline int h2_piece(struct h2_walk *w, struct h2_dir *d, __u8 kind, __u32 n)
{
	struct h2_event *ev = h2_event_for(w->cookie, w->hc, kind, w->dir, w->ts);
	if (!ev)
		return -1;
	if (d->first) {
		ev->first = 1;
		__builtin_memcpy(ev->hdr, d->hdr, 9);
		d->first = 0;
	}
	barrier_var(n);
	if (n > H2_COPY_MAX)
		return -1;
	if (n > 0 && bpf_skb_load_bytes(w->skb, w->off + w->pos, ev->data, n) < 0)
		return -1;
	ev->len = n;
	return h2_send(ev, n);
}

/* Goes over (or copies) the current frame's payload within the segment. */
static __always_inline long h2_payload(struct h2_walk *w, struct h2_dir *d, __u32 avail)
{
	__u32 n = d->left < avail ? d->left : avail;
	if (d->copy && h2_piece(w, d, H2_EV_PIECE, n) != 0) {
		h2_lose(w->cookie, w->hc, w->ts);
		return 1;
	}
	d->left -= n;
	w->pos += n;
	return 0;
}

/* One step of the frame walk: skips preface bytes, goes over (or copies) a
 * frame's payload within the segment, or reads a frame header and goes over
 * (or copies) the payload that follows it in the segment. */
static long h2_step(__u32 i, struct h2_walk *w)
{
	struct h2_conn *hc = w->hc;
	if (hc->lost || w->pos >= w->plen)
		return 1;
	struct h2_dir *d = &hc->d[w->eg & 1];
	__u32 avail = w->plen - w->pos;
	if (d->preface) {
		__u32 n = d->preface < avail ? d->preface : avail;
		d->preface -= n;
		w->pos += n;
		return 0;
	}
	if (d->left)
		return h2_payload(w, d, avail);
	/* A frame header, whole in this segment or split over two. */
	if (!d->have && avail >= 9) {
		if (bpf_skb_load_bytes(w->skb, w->off + w->pos, d->hdr, 9) < 0) {
			h2_lose(w->cookie, hc, w->ts);
			return 1;
		}
		w->pos += 9;
	} else {
		__u32 h = d->have;
		if (h >= 9)
			return 1;
		if (bpf_skb_load_bytes(w->skb, w->off + w->pos, &d->hdr[h], 1) < 0) {
			h2_lose(w->cookie, hc, w->ts);
			return 1;
		}
		w->pos++;
		d->have = ++h;
		if (h < 9)
			return 0;
		d->have = 0;
	}
	__u32 len = ((__u32)d->hdr[0] << 16) | ((__u32)d->hdr[1] << 8) | d->hdr[2];
	__u8 type = d->hdr[3], flags = d->hdr[4];
	d->left = len;
	d->first = 1;
	d->copy = 0;
	switch (type) {
	case 0x1: /* HEADERS */
	case 0x5: /* PUSH_PROMISE */
	case 0x9: /* CONTINUATION */
		if (len > H2_COPY_MAX) {
			h2_lose(w->cookie, hc, w->ts);
			return 1;
		}
		d->copy = 1;
		if (len == 0 && h2_piece(w, d, H2_EV_PIECE, 0) != 0) {
			h2_lose(w->cookie, hc, w->ts);
			return 1;
		}
		break;
	case 0x0: /* DATA */
		/* Only the response's END_STREAM ends a request. */
		if (!(flags & 0x1) || w->dir == 0) /* END_STREAM */
			break;
		/* fall through */
	case 0x3: /* RST_STREAM */
		if (h2_piece(w, d, H2_EV_MARK, 0) != 0) {
			h2_lose(w->cookie, hc, w->ts);
			return 1;
		}
		break;
	}
	if (d->left && w->pos < w->plen)
		return h2_payload(w, d, w->plen - w->pos);
	return 0;
}

/* Follows one payload segment of an HTTP/2 connection. */
static __always_inline int h2_segment(struct __sk_buff *skb, struct sk_state *st, __u64 cookie, __u32 off,
				      __u32 plen, __u32 seq, int egress)
{
	struct h2_conn *hc = bpf_map_lookup_elem(&h2_conns, &cookie);
	if (!hc)
		return 1; /* not followed: the table was full when it started */
	__u64 ts = now_ns(skb, egress);
	if (hc->lost) {
		if (!hc->told)
			h2_lose(cookie, hc, ts);
		return 1;
	}
	__u8 eg = egress ? 1 : 0;
	struct h2_dir *d = &hc->d[eg];
	__u8 req = hc->role == (egress ? 2 : 1);
	if (!d->started) {
		d->started = 1;
		d->next_seq = seq;
		d->preface = req ? H2_PREFACE : 0;
	}
	__s32 delta = (__s32)(seq - d->next_seq);
	if (delta > 0) {
		h2_lose(cookie, hc, ts); /* a gap: bytes were never seen */
		return 1;
	}
	__u32 skip = -delta;
	if (skip >= plen)
		return 1; /* all seen before */
	struct h2_walk w = {
		.skb = skb, .hc = hc, .cookie = cookie, .ts = ts, .off = off, .plen = plen, .pos = skip,
		.eg = eg, .dir = req ? 0 : 1,
	};
	bpf_loop(H2_MAX_STEPS, h2_step, &w, 0);
	d->next_seq = seq + plen;
	if (w.pos < plen && !hc->lost)
		h2_lose(cookie, hc, ts); /* more frames than steps */
	return 1;
}

/* A SETTINGS frame on stream 0 with whole settings: what a server sends
 * first (it may do so before the client's preface arrives). */
static __always_inline int h2_settings_first(const __u8 *p)
{
	__u32 len = ((__u32)p[0] << 16) | ((__u32)p[1] << 8) | p[2];
	return len % 6 == 0 && len <= 6 * 16 && p[3] == 0x4 && p[4] == 0 && p[5] == 0 && p[6] == 0 && p[7] == 0 &&
	       p[8] == 0;
}

/* Starts following a connection just classified HTTP/2 by its first payload
 * segment (the client preface, or a server's SETTINGS), then follows it. */
static __always_inline int h2_start(struct __sk_buff *skb, struct sk_state *st, __u64 cookie, __u32 off, __u32 plen,
				    __u32 seq, int egress, const __u8 *p)
{
	int preface = W(p[0], p[1], p[2], p[3]) == W('P', 'R', 'I', ' ');
	/* The preface goes from client to server; SETTINGS first from server
	 * to client. */
	__u8 role = preface == !!egress ? 2 : 1;
	st->role = role;
	struct h2_conn hc = {};
	hc.role = role;
	hc.cgid = bpf_skb_cgroup_id(skb);
	if (bpf_map_update_elem(&h2_conns, &cookie, &hc, BPF_NOEXIST) != 0)
		return 1;
	return h2_segment(skb, st, cookie, off, plen, seq, egress);
}

/* A closed HTTP/2 connection: tell user space, forget it. */
static __always_inline void h2_close(__u64 cookie)
{
	struct h2_conn *hc = bpf_map_lookup_elem(&h2_conns, &cookie);
	if (!hc)
		return;
	struct h2_event *ev = h2_event_for(cookie, hc, H2_EV_CLOSE, 0, bpf_ktime_get_ns());
	if (ev)
		h2_send(ev, 0);
	bpf_map_delete_elem(&h2_conns, &cookie);
}
