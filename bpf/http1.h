/* HTTP/1.x requests and responses, pipelining included; included by agent.c.
 *
 * A connection's request direction counts a request at every request line:
 * at the start of a segment, and after the end of a header section ("\r\n\r\n")
 * of a request without a body (what clients pipeline: GET, HEAD, DELETE,
 * OPTIONS, TRACE), found by scanning the segment. A request with a body
 * (POST, PUT, PATCH) ends the scan of its segment: the next request line is
 * looked for at the start of the next segment. The response direction counts
 * the status line at the start of the first segment after a request and, while
 * more requests wait for their answers (pipelining), every further status line
 * in the segments that follow: never more responses than requests waited.
 * Latency runs from the request's first byte to its response's first byte;
 * for the third and later of requests pipelined over several segments the
 * start is the newest request's (the answered one's own start is not kept). */

/* A request line's first four bytes: one of the HTTP/1.x methods. */
static __always_inline int is_request(const __u8 *p)
{
	switch (W(p[0], p[1], p[2], p[3])) {
	case W('G', 'E', 'T', ' '):
	case W('P', 'O', 'S', 'T'):
	case W('P', 'U', 'T', ' '):
	case W('H', 'E', 'A', 'D'):
	case W('D', 'E', 'L', 'E'):
	case W('P', 'A', 'T', 'C'):
	case W('O', 'P', 'T', 'I'):
	case W('C', 'O', 'N', 'N'):
	case W('T', 'R', 'A', 'C'):
		return 1;
	}
	return 0;
}

/* "HTTP/1.x NNN": returns the status class 1..5, or 0. */
static __always_inline int response_class(const __u8 *p)
{
	if (W(p[0], p[1], p[2], p[3]) != W('H', 'T', 'T', 'P') || p[4] != '/' || p[5] != '1' || p[8] != ' ')
		return 0;
	__u8 c = p[9];
	if (c < '1' || c > '5')
		return 0;
	return c - '0';
}

static __always_inline __u8 classify(const __u8 *p)
{
	if (is_request(p))
		return PROTO_HTTP1;
	switch (W(p[0], p[1], p[2], p[3])) {
	case W('H', 'T', 'T', 'P'):
		return p[4] == '/' && p[5] == '1' ? PROTO_HTTP1 : PROTO_OTHER;
	case W('P', 'R', 'I', ' '):
		return p[4] == '*' && p[5] == ' ' && p[6] == 'H' && p[7] == 'T' ? PROTO_HTTP2 : PROTO_OTHER;
	}
	/* A server's SETTINGS sent before the client's preface arrived. */
	if (h2_settings_first(p))
		return PROTO_HTTP2;
	/* TLS handshake record carrying a ClientHello (or ServerHello). */
	if (p[0] == 0x16 && p[1] == 0x03 && p[2] <= 0x04 && (p[5] == 0x01 || p[5] == 0x02))
		return PROTO_TLS;
	return PROTO_OTHER;
}

/* Counts a request whose line starts with p (at least 4 bytes known, or
 * fewer when known is smaller: then a method's prefix). */
static __always_inline void h1_request(struct sk_state *st, struct cg_stats *s, __u8 first, __u64 now)
{
	__u32 side = st->role - 1;
	if (side >= SIDES)
		return;
	s->http_requests[side]++;
	if (!st->pending)
		st->req_ts = now;
	st->last_ts = now;
	if (st->pending < 0xffff)
		st->pending++;
	/* POST, PUT, PATCH carry a body: their header end is not looked for. */
	if (first == 'P')
		st->flags &= ~ST_SCAN;
	else
		st->flags |= ST_SCAN;
}

/* Counts a status line of class cls (p: its first 12 bytes); returns 0 when
 * no request waits any longer. */
static __always_inline int h1_response(struct sk_state *st, struct cg_stats *s, int cls, const __u8 *p, __u64 now)
{
	if (cls == 1) {
		/* 1xx is interim: the final response follows, except after 101
		 * Switching Protocols, when HTTP/1.x ends. */
		if (p[10] == '0' && p[11] == '1') {
			st->flags |= ST_DONE;
			return 0;
		}
		return 1;
	}
	__u32 side = st->role - 1;
	if (side >= SIDES || cls < 1 || cls > 5)
		return 0;
	s->http_responses[side][cls - 1]++;
	__u64 d = now > st->req_ts ? now - st->req_ts : 0;
	s->http_latency[side][bucket_us(d / 1000)]++;
	s->http_latency_sum_ns[side] += d;
	if (st->pending)
		st->pending--;
	st->req_ts = st->pending ? st->last_ts : 0;
	if (st->flags & ST_TUNNEL) {
		st->flags |= ST_DONE; /* a CONNECT tunnel carries other bytes now */
		return 0;
	}
	return st->pending != 0;
}

#define SCAN_STEP 64 /* start positions tested per bpf_loop iteration */
#define SCAN_LOAD 68 /* bytes loaded per iteration: the step and a lookahead */
#define SCAN_MAX_STEPS 1024 /* 64 KiB: a GSO segment */

struct h1_scan {
	struct __sk_buff *skb;
	struct sk_state *st;
	struct cg_stats *s;
	__u64 now;
	__u32 off;  /* payload offset in the skb */
	__u32 plen; /* payload length */
	__u32 pos;  /* next payload position to test */
	__u32 resp; /* looking for status lines, else for header ends */
};

struct scan_buf {
	__u8 b[SCAN_LOAD];
	__u32 cand; /* see h1_scan_step */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scan_buf);
} scan_bufs SEC(".maps");

/* Start positions a step can test when n bytes were loaded. */
static __always_inline __u32 lim_of(__u32 n)
{
	return n - 3 < SCAN_STEP ? n - 3 : SCAN_STEP;
}

/* "\r\n\r\n" at b[s]. */
static __always_inline int hdr_end(const __u8 *b, __u32 s)
{
	return W(b[s], b[s + 1], b[s + 2], b[s + 3]) == W('\r', '\n', '\r', '\n');
}

/* One bpf_loop step: tests SCAN_STEP positions. Returns 1 to stop. */
static long h1_scan_step(__u32 i, struct h1_scan *c)
{
	__u32 k = 0;
	struct scan_buf *sb = bpf_map_lookup_elem(&scan_bufs, &k);
	if (!sb)
		return 1;
	__u32 pos = c->pos, plen = c->plen;
	if (pos >= plen || plen > 0xffff)
		return 1;
	__u32 n = plen - pos;
	if (n > SCAN_LOAD)
		n = SCAN_LOAD;
	barrier_var(n); /* keep the lower bound check for the verifier */
	if (n < 4)
		return 1;
	/* Only the n bytes loaded are compared: no need to clear the rest. */
	if (bpf_skb_load_bytes(c->skb, c->off + pos, sb->b, n) < 0)
		return 1;
	/* Find the first candidate; act on it; the next step goes on after it. */
	__u32 j = lim_of(n), lim = j;
	if (c->resp) {
		for (__u32 q = 0; q < SCAN_STEP; q++) {
			if (q >= lim)
				break;
			if (sb->b[q] == 'H' && W(sb->b[q], sb->b[q + 1], sb->b[q + 2], sb->b[q + 3]) == W('H', 'T', 'T', 'P')) {
				j = q;
				break;
			}
		}
	} else {
		/* Every run of four positions holds one position q = 3 mod 4,
		 * and a header end ("\r\n\r\n") starting in [q-3, q] puts a CR
		 * or LF there: only those runs are looked at closer. */
#pragma unroll
		for (__u32 q = 3; q < SCAN_STEP + 3; q += 4) {
			if (q - 3 >= lim)
				break;
			__u8 x = sb->b[q];
			if (x != '\r' && x != '\n')
				continue;
			if (hdr_end(sb->b, q - 3)) {
				j = q - 3;
				break;
			}
			if (q - 2 < lim && hdr_end(sb->b, q - 2)) {
				j = q - 2;
				break;
			}
			if (q - 1 < lim && hdr_end(sb->b, q - 1)) {
				j = q - 1;
				break;
			}
			if (q < lim && hdr_end(sb->b, q)) {
				j = q;
				break;
			}
		}
	}
	/* The candidate goes through memory, so that the verifier goes on
	 * from one state whatever position it was found at (read back, it is
	 * a number it knows nothing of but the bounds checked below). */
	sb->cand = j;
	asm volatile("" ::: "memory");
	j = *(volatile __u32 *)&sb->cand;
	if (j >= lim) {
		c->pos = pos + lim;
		return lim < SCAN_STEP;
	}
	/* Act on the candidate from a fresh copy of constant size, so that the
	 * verifier need not follow each position the loop may stop at. */
	__u32 at = pos + j;
	__u8 p[PEEK] = {};
	struct sk_state *st = c->st;
	if (plen - at >= PEEK) {
		if (bpf_skb_load_bytes(c->skb, c->off + at, p, PEEK) < 0)
			return 1;
	} else if (plen - at >= 8) {
		if (bpf_skb_load_bytes(c->skb, c->off + at, p, 8) < 0)
			return 1;
	} else if (bpf_skb_load_bytes(c->skb, c->off + at, p, 4) < 0) {
		return 1;
	}
	if (c->resp) {
		c->pos = at + 1;
		int cls = response_class(p);
		if (cls && !h1_response(st, c->s, cls, p, c->now))
			return 1;
		return 0;
	}
	/* The header section of the current request ends here. */
	c->pos = at + 4;
	__u32 rest = plen - (at + 4);
	if (rest == 0) {
		st->flags &= ~ST_SCAN;
		return 1;
	}
	if (rest >= 4 ? !is_request(&p[4]) : (p[4] < 'A' || p[4] > 'Z')) {
		st->flags &= ~ST_SCAN;
		return 1;
	}
	/* A pipelined request (when rest < 4, its line goes on in the next
	 * segment). */
	h1_request(st, c->s, p[4], c->now);
	return !(st->flags & ST_SCAN) || rest < 4;
}

static __always_inline void h1_scan(struct __sk_buff *skb, struct sk_state *st, struct cg_stats *s,
				    __u32 off, __u32 plen, __u32 from, __u64 now, int resp)
{
	struct h1_scan c = {
		.skb = skb, .st = st, .s = s, .now = now, .off = off, .plen = plen, .pos = from, .resp = resp,
	};
	bpf_loop(SCAN_MAX_STEPS, h1_scan_step, &c, 0);
}

/* What the start of a segment says; returns where the rest of the segment
 * is to be scanned from (-1: not at all). */
static __always_inline int http1_heads(struct __sk_buff *skb, struct sk_state *st, struct cg_stats *s,
				       __u32 off, __u32 plen, int egress, __u64 now, __u64 cookie, __u32 seq)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	/* The role a socket has when this direction carries its requests. */
	__u8 req_role = egress ? 2 : 1;
	int is_req = st->role == req_role;

	if (st->role) {
		/* The header section of a request without a body goes on:
		 * look for its end and pipelined requests. */
		if (is_req && (st->flags & ST_SCAN))
			return 0;
		/* Response direction: only while requests wait. */
		if (!is_req && !st->pending)
			return -1;
	}

	__u8 p[PEEK] = {};
	if (plen >= PEEK) {
		__u8 *pl = data + off;
		if ((void *)(pl + PEEK) <= end)
			__builtin_memcpy(p, pl, PEEK);
		else if (bpf_skb_load_bytes(skb, off, p, PEEK) < 0)
			return -1;
	} else if (!st->proto) {
		/* Too short to carry a request line or a handshake. */
		st->proto = PROTO_OTHER + 1;
		s->proto[PROTO_OTHER]++;
		return -1;
	} else if (plen >= 4 && is_req) {
		/* A short request line (the rest follows). */
		if (bpf_skb_load_bytes(skb, off, p, 4) < 0)
			return -1;
	} else {
		return -1;
	}

	if (!st->proto) {
		__u8 c = classify(p);
		st->proto = c + 1;
		if (c < PROTOS)
			s->proto[c]++;
		if (c == PROTO_HTTP2)
			h2_start(skb, st, cookie, off, plen, seq, egress, p);
		if (c != PROTO_HTTP1)
			return -1;
	}

	if (!st->role) {
		/* The first request tells which side of HTTP this socket is. */
		if (!is_request(p))
			return -1;
		st->role = req_role;
		is_req = 1;
		if (W(p[0], p[1], p[2], p[3]) == W('C', 'O', 'N', 'N'))
			st->flags |= ST_TUNNEL;
	}

	if (is_req) {
		/* A request line at the start of a segment: a new request,
		 * pipelined when others wait. Anything else continues the
		 * current one (its body, or a long header section). */
		if (!is_request(p))
			return -1;
		h1_request(st, s, p[0], now);
		return (st->flags & ST_SCAN) ? 4 : -1;
	}

	/* A status line answering the oldest waiting request, and while more
	 * wait, the status lines of the responses after it. */
	int cls = response_class(p);
	if (cls && !h1_response(st, s, cls, p, now))
		return -1;
	if (!st->pending)
		return -1;
	return cls ? PEEK : 1;
}

/* HTTP/1.x on one payload segment of a connection classified HTTP/1 or not
 * classified yet. */
static __always_inline int http1_segment(struct __sk_buff *skb, struct sk_state *st, struct cg_stats *s,
					 __u32 off, __u32 plen, int egress, __u64 cookie, __u32 seq)
{
	__u64 now = now_ns(skb, egress);
	int from = http1_heads(skb, st, s, off, plen, egress, now, cookie, seq);
	if (from >= 0)
		h1_scan(skb, st, s, off, plen, from, now, st->role != (egress ? 2 : 1));
	return 1;
}
