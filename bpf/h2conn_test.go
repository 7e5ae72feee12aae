package bpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// frameHeader builds an HTTP/2 frame header.
func frameHeader(n int, typ, flags byte, sid uint32) [9]byte {
	var h [9]byte
	h[0], h[1], h[2] = byte(n>>16), byte(n>>8), byte(n)
	h[3], h[4] = typ, flags
	binary.BigEndian.PutUint32(h[5:], sid)
	return h
}

// event encodes a ring buffer record as agent.c writes it.
func event(cookie uint64, kind, dir, side byte, first bool, hdr [9]byte, data []byte) []byte {
	b := make([]byte, h2EventHead+len(data))
	binary.LittleEndian.PutUint64(b[0:], cookie)
	binary.LittleEndian.PutUint64(b[8:], 7) // cgroup
	binary.LittleEndian.PutUint64(b[16:], 1000)
	binary.LittleEndian.PutUint16(b[24:], uint16(len(data)))
	b[26], b[27], b[28] = kind, dir, side
	copy(b[29:38], hdr[:])
	if first {
		b[38] = 1
	}
	copy(b[h2EventHead:], data)
	return b
}

func block(enc *hpack.Encoder, buf *bytes.Buffer, kv ...string) []byte {
	buf.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		_ = enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return bytes.Clone(buf.Bytes())
}

// grpcExchange returns the records of n gRPC calls on one connection (one
// encoder per direction, as a real peer has), ending with the given codes.
func grpcExchange(codes ...string) [][]byte {
	var reqBuf, respBuf bytes.Buffer
	reqEnc, respEnc := hpack.NewEncoder(&reqBuf), hpack.NewEncoder(&respBuf)
	var out [][]byte
	for i, code := range codes {
		sid := uint32(2*i + 1)
		req := block(reqEnc, &reqBuf, ":method", "POST", ":scheme", "http", ":path", "/grpc.health.v1.Health/Check",
			":authority", "127.0.0.1", "content-type", "application/grpc", "te", "trailers")
		// The request's HEADERS, split into two pieces.
		h := frameHeader(len(req), 0x1, flagEndHeaders, sid)
		out = append(out, event(1, h2EvPiece, 0, 1, true, h, req[:len(req)/2]), event(1, h2EvPiece, 0, 1, false, h, req[len(req)/2:]))
		out = append(out, event(1, h2EvMark, 0, 1, true, frameHeader(5, 0x0, flagEndStream, sid), nil))
		resp := block(respEnc, &respBuf, ":status", "200", "content-type", "application/grpc")
		out = append(out, event(1, h2EvPiece, 1, 1, true, frameHeader(len(resp), 0x1, flagEndHeaders, sid), resp))
		// Trailers in a HEADERS and a CONTINUATION.
		tr := block(respEnc, &respBuf, "grpc-status", code, "grpc-message", "m")
		out = append(out, event(1, h2EvPiece, 1, 1, true, frameHeader(1, 0x1, flagEndStream, sid), tr[:1]))
		out = append(out, event(1, h2EvPiece, 1, 1, true, frameHeader(len(tr)-1, 0x9, flagEndHeaders, sid), tr[1:]))
	}
	return append(out, event(1, h2EvClose, 0, 1, false, [9]byte{}, nil))
}

func newTestTracker() *h2Tracker {
	return &h2Tracker{stats: map[uint64]*L7Stats{}, live: map[uint64]*h2Live{}}
}

func TestH2ConnCountsGRPCStatuses(t *testing.T) {
	tr := newTestTracker()
	for _, rec := range grpcExchange("0", "5", "14", "13", "0") {
		ev, err := parseH2Event(rec)
		if err != nil {
			t.Fatal(err)
		}
		tr.handle(&ev, nil)
	}
	s := tr.stats[7].GRPC[SideClient]
	if s.Requests != 5 || s.Codes[0] != 2 || s.Codes[5] != 1 || s.Codes[14] != 1 || s.Codes[13] != 1 {
		t.Errorf("requests %d, codes %v; want 5 requests: 2 OK, 1 NotFound, 1 Unavailable, 1 Internal", s.Requests, s.Codes)
	}
	if s.Responses[Status2xx] != 2 || s.Responses[Status4xx] != 1 || s.Responses[Status5xx] != 2 {
		t.Errorf("classes %v, want 2 2xx, 1 4xx, 2 5xx", s.Responses)
	}
	if tr.stats[7].Desynchronised != 0 || len(tr.live) != 0 {
		t.Errorf("desynchronised %d, live %d; want 0, 0", tr.stats[7].Desynchronised, len(tr.live))
	}
}

// A LOST record after the first call: that call is counted, the connection
// once as desynchronised, and nothing after it.
func TestH2ConnLostDesynchronises(t *testing.T) {
	tr := newTestTracker()
	recs := grpcExchange("13", "0", "5")
	lost := event(1, h2EvLost, 0, 1, false, [9]byte{}, nil)
	recs = append(append(append([][]byte{}, recs[:6]...), lost), recs[6:]...)
	for _, rec := range recs {
		ev, err := parseH2Event(rec)
		if err != nil {
			t.Fatal(err)
		}
		tr.handle(&ev, nil)
	}
	s := tr.stats[7]
	g := s.GRPC[SideClient]
	if g.Codes[13] != 1 || g.Codes[0] != 0 || g.Codes[5] != 0 || g.Requests != 1 || s.Desynchronised != 1 {
		t.Errorf("requests %d, codes %v, desynchronised %d; want 1 request answered Internal, 1 desynchronised", g.Requests, g.Codes, s.Desynchronised)
	}
}

func TestH2ConnPieces(t *testing.T) {
	c := newH2Conn()
	// A continuation piece with no frame started.
	_, err := c.piece(&h2Event{kind: h2EvPiece, data: []byte{1}}, nil)
	if !errors.Is(err, errDesync) {
		t.Errorf("orphan piece: %v, want a desync", err)
	}
	// A HEADERS frame whose block does not decode.
	c = newH2Conn()
	_, err = c.piece(&h2Event{kind: h2EvPiece, first: true, hdr: frameHeader(2, 0x1, flagEndHeaders, 1), data: []byte{0xff, 0xff}}, nil)
	if !errors.Is(err, errDesync) {
		t.Errorf("bad block: %v, want a desync", err)
	}
}

// FuzzH2Events feeds ring buffer records (each prefixed by its 2-byte
// length) to the tracker: nothing panics, answers never outnumber requests,
// and every gRPC answer is counted under one code.
func FuzzH2Events(f *testing.F) {
	var seed []byte
	for _, rec := range grpcExchange("0", "5", "14") {
		seed = binary.LittleEndian.AppendUint16(seed, uint16(len(rec)))
		seed = append(seed, rec...)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		tr := newTestTracker()
		var done []h2Done
		for len(b) >= 2 {
			n := int(binary.LittleEndian.Uint16(b))
			b = b[2:]
			n = min(n, len(b))
			ev, err := parseH2Event(b[:n])
			b = b[n:]
			if err != nil {
				continue
			}
			done = tr.handle(&ev, done)
		}
		for _, s := range tr.stats {
			for side := range 2 {
				for _, l := range []*L7Side{&s.HTTP2[side], &s.GRPC[side]} {
					var answered uint64
					for _, x := range l.Responses {
						answered += x
					}
					if answered > l.Requests {
						t.Fatalf("%d answers to %d requests", answered, l.Requests)
					}
				}
				g := s.GRPC[side]
				var codes, answered uint64
				for _, x := range g.Codes {
					codes += x
				}
				for _, x := range g.Responses {
					answered += x
				}
				if codes != answered {
					t.Fatalf("gRPC: %d codes for %d answers", codes, answered)
				}
			}
		}
	})
}

// FuzzHeaderBlock decodes arbitrary header frames (type, flags and payload
// from the input) on both directions of one connection: nothing panics, and
// an error is always a desync.
func FuzzHeaderBlock(f *testing.F) {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	f.Add(byte(0x1), byte(flagEndHeaders), block(enc, &buf, ":method", "GET", ":path", "/", "content-type", "application/grpc"))
	f.Add(byte(0x1), byte(flagEndHeaders|flagEndStream|flagPadded), append([]byte{2}, append(block(enc, &buf, ":status", "200"), 0, 0)...))
	f.Add(byte(0x1), byte(flagEndHeaders|flagPriority), append([]byte{0, 0, 0, 1, 16}, block(enc, &buf, ":status", "503")...))
	f.Add(byte(0x9), byte(flagEndHeaders), block(enc, &buf, "grpc-status", "14"))
	f.Add(byte(0x5), byte(flagEndHeaders), append([]byte{0, 0, 0, 2}, block(enc, &buf, ":path", "/pushed")...))
	f.Fuzz(func(t *testing.T, typ, flags byte, p []byte) {
		if len(p) > h2CopyMax {
			p = p[:h2CopyMax]
		}
		c := newH2Conn()
		for _, dir := range []uint8{0, 1} {
			for _, sid := range []uint32{1, 1, 3} {
				_, err := c.frame(dir, frameHeader(len(p), typ, flags, sid), p, 5, nil)
				if err != nil && !errors.Is(err, errDesync) {
					t.Fatalf("error %v is no desync", err)
				}
			}
		}
	})
}

// BenchmarkH2TrackerCall is the user-space cost of one gRPC call's records
// (one socket: request HEADERS in two pieces, its END_STREAM, response
// HEADERS, trailers in HEADERS and CONTINUATION).
func BenchmarkH2TrackerCall(b *testing.B) {
	codes := make([]string, 1000)
	for i := range codes {
		codes[i] = "0"
	}
	recs := grpcExchange(codes...)
	recs = recs[:len(recs)-1] // no close
	evs := make([]h2Event, len(recs))
	for i, r := range recs {
		ev, err := parseH2Event(r)
		if err != nil {
			b.Fatal(err)
		}
		evs[i] = ev
	}
	per := len(evs) / len(codes)
	tr := newTestTracker()
	var done []h2Done
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Stream ids repeat after 1,000 calls: close and start afresh.
		j := i % len(codes)
		if j == 0 {
			delete(tr.live, 1)
		}
		for _, ev := range evs[j*per : (j+1)*per] {
			done = tr.handle(&ev, done)
		}
	}
}
