//go:build ignore

// meshshift node agent: per-cgroup TCP and HTTP/1.x counters; HTTP/2 frame
// following (http2.h).
//
// Hot path rules: no per-packet user-space traffic; the one ring buffer
// (h2_events) carries only the header frames of HTTP/2 connections. All
// counters live in a per-CPU array indexed by a per-cgroup slot; the
// per-connection state (protocol class, pending HTTP request) lives in a
// preallocated table indexed by the socket cookie (conns, below) or, for
// sockets that get no entry there, in socket local storage, which disappears
// with the socket.
//
// Clock reads: the egress side takes the time TCP stamped on the segment
// (skb->tstamp, CLOCK_MONOTONIC like bpf_ktime_get_ns, set when TCP
// transmits it; with fq pacing the departure time) instead of reading the
// clock; the ingress side reads the clock once per direction change.
//
// Attribution always uses the socket's own cgroup (sk->sk_cgrp_data), never
// the current task's: the passive side of sock_ops runs in softirq.

#include "vmlinux.h"
#include "bpf_helpers.h"
#include "bpf_core_read.h"
#include "bpf_endian.h"
#include "bpf_tracing.h"

char __license[] SEC("license") = "Dual MIT/GPL";

#define HIST_BUCKETS 24
#define MAX_CGROUPS 16384

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP_ 6

enum ms_side { SIDE_SERVER = 0, SIDE_CLIENT = 1, SIDES = 2 };
enum ms_proto { PROTO_OTHER = 0, PROTO_HTTP1 = 1, PROTO_HTTP2 = 2, PROTO_TLS = 3, PROTOS = 4 };
enum { STATUS_CLASSES = 5 }; /* 1xx..5xx */

/* What every HTTP/1.x exchange touches comes first (two cache lines), the
 * per-connection and rare counters after the latency histogram. */
struct cg_stats {
	__u64 bytes_sent;
	__u64 bytes_received;
	__u64 http_requests[SIDES];
	__u64 http_latency_sum_ns[SIDES];
	__u64 http_responses[SIDES][STATUS_CLASSES];
	__u64 http_latency[SIDES][HIST_BUCKETS]; /* bucket i: [2^i, 2^(i+1)) us */
	__u64 conn_active_opened;
	__u64 conn_passive_opened;
	__u64 conn_failed;
	__u64 conn_closed;
	__u64 retransmits;
	__u64 resets_sent;
	__u64 resets_received;
	__u64 proto[PROTOS];
	__u64 rtt[HIST_BUCKETS]; /* bucket i: [2^i, 2^(i+1)) us */
	__u64 rtt_sum_us;
};

struct sk_state {
	__u64 req_ts;  /* first byte of the oldest unanswered request, 0 if none */
	__u64 last_ts; /* first byte of the newest unanswered request */
	__u32 slot;    /* counters slot of the socket's cgroup */
	__u8 has_slot;
	__u8 proto;    /* enum ms_proto + 1; 0 = not classified yet */
	__u8 role;     /* 0 unknown, 1 server (requests come in), 2 client */
	__u8 flags;    /* ST_* */
	__u16 pending; /* HTTP/1.x requests not answered yet */
};

#define ST_TUNNEL 1 /* the first request was CONNECT */
#define ST_DONE 2   /* no more HTTP/1.x on this socket (tunnel, 101 upgrade) */
#define ST_SCAN 4   /* the current request has no body and its header section goes on */

/* Counters live in a per-CPU array indexed by a small slot number; each
 * cgroup gets a slot the first time one of its sockets is seen, and each
 * socket remembers its slot, so the per-packet path does one inlined array
 * lookup instead of a hash lookup. Slot 0 collects what cannot be attributed
 * (no cgroup, or all slots taken). User space returns the slots of removed
 * cgroups through free_slots. max_slots is set by the loader. */
volatile const __u32 max_slots = 4096;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct cg_stats);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);   /* cgroup id */
	__type(value, __u32); /* slot */
} slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 4096);
	__type(value, __u32);
} free_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32); /* slots handed out so far, not counting 0 */
} slot_alloc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sk_state);
} sk_states SEC(".maps");

/* Per-connection state without an allocation: a direct-mapped table indexed
 * by the socket cookie (unique per boot, handed out in sequence), each entry
 * tagged with the cookie of the socket that owns it (0: free). The first
 * payload segment of a socket whose close sock_ops will see (it set the state
 * callback flag on it) claims its entry if it is free; the state callback to
 * TCP_CLOSE zeroes the entry and frees it, so a claimed entry starts as the
 * zero state. The lookup is an inlined array access: no lock, no hash, no
 * allocation. Other sockets (there before the programs were attached,
 * listeners, the entry owned by another live connection) keep their state in
 * sk_states, which is allocated and charged to the memory cgroup per socket:
 * about 1 us per socket here, a third of the programs' time for a short
 * connection. A socket never has state in both: storage is looked at before
 * an entry is claimed. (As with socket storage, two CPUs handling packets of
 * one socket at the same moment may race on its fields; a packet handled
 * while its socket closes on another CPU may write to the freed entry, which
 * the next owner zeroes.) */
#define CONN_SLOTS 32768 /* power of two; 40 bytes each */

struct conn {
	__u64 cookie; /* owner; 0 when free */
	struct sk_state st;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CONN_SLOTS);
	__type(key, __u32);
	__type(value, struct conn);
} conns SEC(".maps");

/* The entry of the socket with this cookie, or NULL when it has none. */
static __always_inline struct conn *conn_of(__u64 cookie)
{
	__u32 i = cookie & (CONN_SLOTS - 1);
	struct conn *c = bpf_map_lookup_elem(&conns, &i);
	if (c && c->cookie == cookie)
		return c;
	return 0;
}

/* Claims the socket's entry: only for a socket that sock_ops will see close
 * and when the entry is free (or another CPU just claimed it for this same
 * socket). NULL when the socket's state must go to sk_states. */
static __always_inline struct sk_state *conn_claim(struct bpf_sock *bsk, __u64 cookie)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(bsk);
	if (!tp || !(tp->bpf_sock_ops_cb_flags & BPF_SOCK_OPS_STATE_CB_FLAG))
		return 0;
	if (tp->inet_conn.icsk_inet.sk.__sk_common.skc_state == TCP_CLOSE)
		return 0; /* its close callback has run */
	__u32 i = cookie & (CONN_SLOTS - 1);
	struct conn *c = bpf_map_lookup_elem(&conns, &i);
	if (!c)
		return 0;
	__u64 owner = c->cookie;
	if (!owner) {
		owner = __sync_val_compare_and_swap(&c->cookie, 0, cookie);
		if (!owner) {
			/* Ours. It was zeroed when freed; zero it again in
			 * case a late packet of the old owner wrote to it. */
			__builtin_memset(&c->st, 0, sizeof(c->st));
			return &c->st;
		}
	}
	if (owner != cookie)
		return 0;
	return &c->st; /* claimed for this socket by another CPU just now */
}

/* Frees the entry of a closed socket. */
static __always_inline void conn_free(struct conn *c)
{
	__builtin_memset(&c->st, 0, sizeof(c->st));
	__sync_lock_test_and_set(&c->cookie, 0); /* a full barrier: zeroed first */
}

/* Who calls whom: per (cgroup, peer address), the connections the cgroup's
 * sockets accepted from that address, counted at
 * BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB (the handshake of an accepted
 * connection completed; connections a socket opens are not counted). An IPv4
 * peer is stored as its IPv4-mapped IPv6 address, as a dual-stack listener
 * sees it. The map is an LRU hash bounded by the loader (Options.MaxPeers):
 * when it is full the kernel evicts the least recently used pairs (an LRU hash
 * may also evict a little before it is full), so an evicted pair's count
 * starts again from zero if the peer comes back, and user space reports the
 * accepted connections it cannot put on a listed peer as dropped. */
struct peer_key {
	__u64 cgid;
	__u32 addr[4]; /* network byte order */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384); /* set by the loader */
	__type(key, struct peer_key);
	__type(value, __u64); /* connections accepted */
} peers SEC(".maps");

#define AF_INET_ 2

static __always_inline void peer_accepted(struct bpf_sock_ops *skops, __u64 cgid)
{
	if (!cgid)
		return;
	struct peer_key k = {.cgid = cgid};
	/* Every field read at its own constant offset (the verifier refuses a
	 * context access at a computed one, which merged branches would make). */
	__u32 v4 = skops->remote_ip4;
	barrier_var(v4);
	__u32 a0 = skops->remote_ip6[0], a1 = skops->remote_ip6[1];
	__u32 a2 = skops->remote_ip6[2], a3 = skops->remote_ip6[3];
	barrier_var(a0);
	barrier_var(a1);
	barrier_var(a2);
	barrier_var(a3);
	if (skops->family == AF_INET_) {
		k.addr[2] = bpf_htonl(0xffff);
		k.addr[3] = v4;
	} else {
		k.addr[0] = a0;
		k.addr[1] = a1;
		k.addr[2] = a2;
		k.addr[3] = a3;
	}
	__u64 *n = bpf_map_lookup_elem(&peers, &k);
	if (n) {
		__sync_fetch_and_add(n, 1);
		return;
	}
	__u64 one = 1;
	if (bpf_map_update_elem(&peers, &k, &one, BPF_NOEXIST) == 0)
		return;
	/* Another CPU added it first. */
	n = bpf_map_lookup_elem(&peers, &k);
	if (n)
		__sync_fetch_and_add(n, 1);
}

static __always_inline __u32 slot_for(__u64 cgid)
{
	if (!cgid)
		return 0;
	__u32 *sp = bpf_map_lookup_elem(&slots, &cgid);
	if (sp)
		return *sp;
	__u32 slot;
	if (bpf_map_pop_elem(&free_slots, &slot) != 0) {
		__u32 k = 0;
		__u32 *n = bpf_map_lookup_elem(&slot_alloc, &k);
		if (!n)
			return 0;
		slot = __sync_fetch_and_add(n, 1) + 1;
		if (slot >= max_slots)
			return 0;
	}
	if (bpf_map_update_elem(&slots, &cgid, &slot, BPF_NOEXIST) != 0) {
		/* Another CPU won the race (or the map is full): give it back. */
		bpf_map_push_elem(&free_slots, &slot, 0);
		sp = bpf_map_lookup_elem(&slots, &cgid);
		return sp ? *sp : 0;
	}
	return slot;
}

static __always_inline struct cg_stats *stats_at(__u32 slot)
{
	return bpf_map_lookup_elem(&counters, &slot);
}

static __always_inline struct cg_stats *stats_for(__u64 cgid)
{
	return stats_at(slot_for(cgid));
}

static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0;
	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { r += 1; }
	return r;
}

static __always_inline __u32 bucket_us(__u64 us)
{
	__u32 b = log2_u64(us);
	if (b >= HIST_BUCKETS)
		b = HIST_BUCKETS - 1;
	return b;
}

/* The socket's own cgroup id; 0 when the socket carries none (request and
 * timewait minisocks). */
static __always_inline __u64 sk_cgid(const struct sock *sk)
{
	if (!sk)
		return 0;
	__u8 state = BPF_CORE_READ(sk, __sk_common.skc_state);
	if (state == TCP_TIME_WAIT || state == TCP_NEW_SYN_RECV)
		return 0;
	return BPF_CORE_READ(sk, sk_cgrp_data.cgroup, kn, id);
}

#define PEEK 12

/* Now, for HTTP timing. On egress TCP has stamped the segment with the time
 * it transmitted it (tcp_clock_cache, refreshed in tcp_write_xmit; the
 * earliest departure time when pacing): the same clock as bpf_ktime_get_ns,
 * read for free. The clock read is the fallback (ingress, and a segment
 * without a stamp). */
static __always_inline __u64 now_ns(struct __sk_buff *skb, int egress)
{
	if (egress) {
		__u64 t = skb->tstamp;
		if (t)
			return t;
	}
	return bpf_ktime_get_ns();
}

#define W(a, b, c, d) ((__u32)(a) | ((__u32)(b) << 8) | ((__u32)(c) << 16) | ((__u32)(d) << 24))

#include "http2.h"
#include "http1.h"

SEC("sockops")
int meshshift_sockops(struct bpf_sock_ops *skops)
{
	__u32 op = skops->op;

	switch (op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		bpf_sock_ops_cb_flags_set(skops, BPF_SOCK_OPS_STATE_CB_FLAG | BPF_SOCK_OPS_RETRANS_CB_FLAG);
		return 1;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		bpf_sock_ops_cb_flags_set(skops, BPF_SOCK_OPS_STATE_CB_FLAG | BPF_SOCK_OPS_RETRANS_CB_FLAG);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] != TCP_CLOSE)
			return 1;
		break;
	case BPF_SOCK_OPS_RETRANS_CB:
		if (skops->args[2] != 0) /* the retransmission itself failed */
			return 1;
		break;
	default:
		return 1;
	}

	struct bpf_sock *bsk = skops->sk;
	if (!bsk)
		return 1;
	/* The socket's state exists once it carried payload (cgroup_skb makes
	 * it); making it here would cost work per connection. */
	struct conn *c = 0;
	struct sk_state *st = 0;
	if (op == BPF_SOCK_OPS_STATE_CB || op == BPF_SOCK_OPS_RETRANS_CB) {
		c = conn_of(bpf_get_socket_cookie(skops));
		if (c)
			st = &c->st;
		else
			st = bpf_sk_storage_get(&sk_states, bsk, 0, 0);
	}
	__u32 slot = 0;
	int has_slot = st && st->has_slot;
	if (has_slot)
		slot = st->slot;
	if (st && op == BPF_SOCK_OPS_STATE_CB && st->proto == PROTO_HTTP2 + 1)
		h2_close(bpf_get_socket_cookie(skops));
	if (c && op == BPF_SOCK_OPS_STATE_CB)
		conn_free(c);
	if (!has_slot) {
		struct tcp_sock *tp = bpf_skc_to_tcp_sock(bsk);
		if (!tp)
			return 1;
		struct cgroup *cg = tp->inet_conn.icsk_inet.sk.sk_cgrp_data.cgroup;
		__u64 cgid = cg ? cg->kn->id : 0;
		slot = slot_for(cgid);
		if (op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
			peer_accepted(skops, cgid);
	}
	struct cg_stats *s = stats_at(slot);
	if (!s)
		return 1;

	switch (op) {
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		s->conn_passive_opened++;
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		s->conn_active_opened++;
		break;
	case BPF_SOCK_OPS_STATE_CB: {
		__u32 old = skops->args[0];
		if (old == TCP_SYN_SENT) {
			s->conn_failed++;
		} else if (old != TCP_SYN_RECV && old != TCP_LISTEN && old != TCP_CLOSE) {
			__u64 rtt = skops->srtt_us >> 3;
			s->conn_closed++;
			s->rtt[bucket_us(rtt)]++;
			s->rtt_sum_us += rtt;
		}
		break;
	}
	case BPF_SOCK_OPS_RETRANS_CB:
		s->retransmits += skops->args[1] ? skops->args[1] : 1;
		break;
	}
	return 1;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(meshshift_rst_rx, struct sock *sk)
{
	struct cg_stats *s = stats_for(sk_cgid(sk));
	if (s)
		s->resets_received++;
	return 0;
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(meshshift_rst_tx, const struct sock *sk, const struct sk_buff *skb)
{
	struct cg_stats *s = stats_for(sk_cgid(sk));
	if (s)
		s->resets_sent++;
	return 0;
}


static __always_inline int handle_skb(struct __sk_buff *skb, int egress)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u32 off;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data;
		if ((void *)(ip + 1) > end)
			return 1;
		if (ip->protocol != IPPROTO_TCP_)
			return 1;
		off = ip->ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data;
		if ((void *)(ip6 + 1) > end)
			return 1;
		if (ip6->nexthdr != IPPROTO_TCP_)
			return 1;
		off = sizeof(*ip6);
	} else {
		return 1;
	}
	if (off > 60)
		return 1;
	struct tcphdr *th = data + off;
	if ((void *)(th + 1) > end)
		return 1;
	off += th->doff * 4;
	if (skb->len <= off)
		return 1; /* no payload: pure ACK, SYN, FIN */
	__u32 plen = skb->len - off;

	struct bpf_sock *bsk = skb->sk;
	if (!bsk)
		return 1;
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct conn *c = conn_of(cookie);
	struct sk_state *st;
	if (c) {
		st = &c->st;
	} else {
		/* bpf_sk_storage_get checks for a full socket itself: no need
		 * for a bpf_sk_fullsock call first. */
		st = bpf_sk_storage_get(&sk_states, bsk, 0, 0);
		if (!st)
			st = conn_claim(bsk, cookie);
		if (!st)
			st = bpf_sk_storage_get(&sk_states, bsk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!st)
			return 1;
	}
	if (!st->has_slot) {
		st->slot = slot_for(bpf_skb_cgroup_id(skb));
		st->has_slot = 1;
	}
	struct cg_stats *s = stats_at(st->slot);
	if (!s)
		return 1;
	if (egress)
		s->bytes_sent += plen;
	else
		s->bytes_received += plen;
	if (st->proto == PROTO_HTTP2 + 1)
		return h2_segment(skb, st, cookie, off, plen, bpf_ntohl(th->seq), egress);
	if (st->proto && st->proto != PROTO_HTTP1 + 1)
		return 1;
	if (st->flags & ST_DONE)
		return 1;
	return http1_segment(skb, st, s, off, plen, egress, cookie, bpf_ntohl(th->seq));
}

SEC("cgroup_skb/ingress")
int meshshift_ingress(struct __sk_buff *skb)
{
	return handle_skb(skb, 0);
}

SEC("cgroup_skb/egress")
int meshshift_egress(struct __sk_buff *skb)
{
	return handle_skb(skb, 1);
}
