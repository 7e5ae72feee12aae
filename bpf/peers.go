package bpf

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

// DefaultMaxPeers bounds the (cgroup, peer address) pairs the kernel counts
// accepted connections for, unless Options say otherwise.
const DefaultMaxPeers = 16384

// peerKey is the peers map's key: struct peer_key of agent.c, with the
// address as the 16 bytes it holds (network byte order; IPv4 as IPv4-mapped
// IPv6).
type peerKey struct {
	Cgid uint64
	Addr [16]byte
}

// readPeers returns, per cgroup id, the connections accepted from each peer
// address (an IPv4-mapped IPv6 address unmapped to IPv4).
func (o *Objects) readPeers() (map[uint64]map[netip.Addr]uint64, error) {
	out := map[uint64]map[netip.Addr]uint64{}
	var (
		k peerKey
		n uint64
	)
	it := o.objs.Peers.Iterate()
	for it.Next(&k, &n) {
		m := out[k.Cgid]
		if m == nil {
			m = map[netip.Addr]uint64{}
			out[k.Cgid] = m
		}
		m[netip.AddrFrom16(k.Addr).Unmap()] += n
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read peers map: %w", err)
	}
	return out, nil
}

// forgetPeers deletes the peers of the given cgroups.
func (o *Objects) forgetPeers(ids []uint64) error {
	gone := make(map[uint64]bool, len(ids))
	for _, id := range ids {
		gone[id] = true
	}
	var (
		k    peerKey
		n    uint64
		dead []peerKey
	)
	it := o.objs.Peers.Iterate()
	for it.Next(&k, &n) {
		if gone[k.Cgid] {
			dead = append(dead, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read peers map: %w", err)
	}
	var errs []error
	for _, k := range dead {
		if err := o.objs.Peers.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("delete peer of cgroup %d: %w", k.Cgid, err))
		}
	}
	return errors.Join(errs...)
}

// addPeers adds o's peer counts to s's.
func (s *Stats) addPeers(o map[netip.Addr]uint64) {
	if len(o) == 0 {
		return
	}
	if s.Peers == nil {
		s.Peers = make(map[netip.Addr]uint64, len(o))
	}
	for a, n := range o {
		s.Peers[a] += n
	}
}
