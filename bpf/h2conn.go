package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/net/http2/hpack"
)

// The user-space half of HTTP/2 following: the kernel sends, per followed
// connection, the HEADERS, CONTINUATION and PUSH_PROMISE frames (possibly in
// pieces) and the headers of the frames that end or reset a stream; this file
// puts the pieces together, decodes the header blocks with one HPACK decoder
// per connection and direction, and turns streams into requests.

// Event kinds, as agent.c's H2_EV_*.
const (
	h2EvPiece = 1
	h2EvMark  = 2
	h2EvLost  = 3
	h2EvClose = 4
)

const (
	h2EventHead = 40   // bytes before an event's data
	h2CopyMax   = 4096 // H2_COPY_MAX
	// h2MaxStreams bounds the open streams of one connection that are
	// remembered; a connection with more is no longer counted.
	h2MaxStreams = 1024
	// h2MaxTable is the largest HPACK dynamic table a peer may ask for
	// (SETTINGS_HEADER_TABLE_SIZE); a larger one desynchronises.
	h2MaxTable = 64 << 10
	// h2MaxString bounds one decoded header field.
	h2MaxString = 16 << 10
)

// h2Event is one record of the h2_events ring buffer.
type h2Event struct {
	cookie, cgid, ts uint64
	kind, dir, side  uint8
	first, lost      bool
	hdr              [9]byte
	data             []byte
}

// parseH2Event decodes a ring buffer record; data aliases b.
func parseH2Event(b []byte) (h2Event, error) {
	if len(b) < h2EventHead {
		return h2Event{}, fmt.Errorf("http2 event of %d bytes: want at least %d", len(b), h2EventHead)
	}
	ev := h2Event{
		cookie: binary.LittleEndian.Uint64(b[0:]),
		cgid:   binary.LittleEndian.Uint64(b[8:]),
		ts:     binary.LittleEndian.Uint64(b[16:]),
		kind:   b[26],
		dir:    b[27],
		side:   b[28],
		first:  b[38] != 0,
		lost:   b[39] != 0,
	}
	copy(ev.hdr[:], b[29:38])
	n := int(binary.LittleEndian.Uint16(b[24:]))
	if n > h2CopyMax || h2EventHead+n > len(b) {
		return h2Event{}, fmt.Errorf("http2 event data length %d: allowed 0 to %d within %d bytes", n, h2CopyMax, len(b)-h2EventHead)
	}
	if ev.kind < h2EvPiece || ev.kind > h2EvClose || ev.dir > 1 || ev.side > 1 {
		return h2Event{}, fmt.Errorf("http2 event kind %d dir %d side %d: out of range", ev.kind, ev.dir, ev.side)
	}
	ev.data = b[h2EventHead : h2EventHead+n]
	return ev, nil
}

// errDesync says a connection's frames or header blocks can no longer be
// followed; the reason is wrapped.
var errDesync = errors.New("http2 connection desynchronised")

// h2Done is a request started (start) or finished.
type h2Done struct {
	start     bool
	grpc      bool
	status    int // HTTP status (HTTP/2), gRPC status code (gRPC)
	latencyNs uint64
}

type h2Stream struct {
	start uint64
	grpc  bool
	// status is the final :status seen; grpcStatus the grpc-status (-1:
	// none yet).
	status, grpcStatus int
}

// h2Block collects what a header block says.
type h2Block struct {
	status, grpcStatus int
	grpc               bool
}

type h2Dir struct {
	dec *hpack.Decoder
	// The frame being put together from pieces.
	hdr     [9]byte
	payload []byte
	want    int // payload bytes still to come; 0: between frames
	// The header block being decoded (HEADERS or PUSH_PROMISE, then
	// CONTINUATION until END_HEADERS).
	inBlock     bool
	promise     bool
	blockStream uint32
	blockEnd    bool // its HEADERS frame carried END_STREAM
	fields      h2Block
	// err is the first emit-side error of the current block.
	err error
}

// h2Conn follows one connection (one socket) in user space.
type h2Conn struct {
	dirs    [2]*h2Dir
	streams map[uint32]h2Stream // by value: no allocation per request
}

func newH2Conn() *h2Conn {
	c := &h2Conn{streams: map[uint32]h2Stream{}}
	for i := range c.dirs {
		d := &h2Dir{}
		d.dec = hpack.NewDecoder(4096, d.emit)
		d.dec.SetAllowedMaxDynamicTableSize(h2MaxTable)
		d.dec.SetMaxStringLength(h2MaxString)
		c.dirs[i] = d
	}
	return c
}

func (d *h2Dir) emit(f hpack.HeaderField) {
	switch f.Name {
	case ":status":
		n, err := strconv.Atoi(f.Value)
		if err != nil || n < 100 || n > 999 {
			d.err = fmt.Errorf("%w: :status %q", errDesync, f.Value)
			return
		}
		d.fields.status = n
	case "grpc-status":
		n, err := strconv.Atoi(f.Value)
		if err != nil || n < 0 {
			d.err = fmt.Errorf("%w: grpc-status %q", errDesync, f.Value)
			return
		}
		d.fields.grpcStatus = n
	case "content-type":
		d.fields.grpc = strings.HasPrefix(f.Value, "application/grpc")
	}
}

// piece takes one PIECE or MARK event; it returns the requests it finished
// (appended to done) or an error wrapping errDesync.
func (c *h2Conn) piece(ev *h2Event, done []h2Done) ([]h2Done, error) {
	d := c.dirs[ev.dir&1]
	if ev.kind == h2EvMark {
		if !ev.first || d.want != 0 || len(ev.data) != 0 {
			return done, fmt.Errorf("%w: frame mark inside a frame", errDesync)
		}
		return c.mark(ev.dir, ev.hdr, ev.ts, done)
	}
	if ev.first {
		if d.want != 0 {
			return done, fmt.Errorf("%w: frame started before the last one ended", errDesync)
		}
		d.hdr = ev.hdr
		n := int(ev.hdr[0])<<16 | int(ev.hdr[1])<<8 | int(ev.hdr[2])
		if n > h2CopyMax || len(ev.data) > n {
			return done, fmt.Errorf("%w: frame of %d bytes with a piece of %d", errDesync, n, len(ev.data))
		}
		d.payload = append(d.payload[:0], ev.data...)
		d.want = n - len(ev.data)
	} else {
		if d.want == 0 || len(ev.data) > d.want || len(ev.data) == 0 {
			return done, fmt.Errorf("%w: piece of %d bytes where %d were due", errDesync, len(ev.data), d.want)
		}
		d.payload = append(d.payload, ev.data...)
		d.want -= len(ev.data)
	}
	if d.want > 0 {
		return done, nil
	}
	return c.frame(ev.dir, d.hdr, d.payload, ev.ts, done)
}

const (
	flagEndStream  = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8
	flagPriority   = 0x20
)

// frame handles one whole HEADERS, PUSH_PROMISE or CONTINUATION frame.
func (c *h2Conn) frame(dir uint8, hdr [9]byte, p []byte, ts uint64, done []h2Done) ([]h2Done, error) {
	d := c.dirs[dir&1]
	typ, flags := hdr[3], hdr[4]
	sid := binary.BigEndian.Uint32(hdr[5:]) & 0x7fffffff
	switch typ {
	case 0x1, 0x5: // HEADERS, PUSH_PROMISE
		if d.inBlock {
			return done, fmt.Errorf("%w: header block of stream %d interrupted", errDesync, d.blockStream)
		}
		if flags&flagPadded != 0 {
			if len(p) < 1 || int(p[0]) > len(p)-1 {
				return done, fmt.Errorf("%w: bad padding", errDesync)
			}
			p = p[1 : len(p)-int(p[0])]
		}
		skip := 0
		if typ == 0x1 && flags&flagPriority != 0 {
			skip = 5
		} else if typ == 0x5 {
			skip = 4 // the promised stream id
		}
		if len(p) < skip {
			return done, fmt.Errorf("%w: short frame", errDesync)
		}
		p = p[skip:]
		d.inBlock, d.promise, d.blockStream = true, typ == 0x5, sid
		d.blockEnd = typ == 0x1 && flags&flagEndStream != 0
		d.fields = h2Block{grpcStatus: -1}
		d.err = nil
	case 0x9: // CONTINUATION
		if !d.inBlock || sid != d.blockStream {
			return done, fmt.Errorf("%w: CONTINUATION of stream %d outside its block", errDesync, sid)
		}
	default:
		return done, fmt.Errorf("%w: frame type %d sent as a header frame", errDesync, typ)
	}
	if _, err := d.dec.Write(p); err != nil {
		return done, fmt.Errorf("%w: hpack: %w", errDesync, err)
	}
	if d.err != nil {
		return done, d.err
	}
	if flags&flagEndHeaders == 0 {
		return done, nil
	}
	d.inBlock = false
	if err := d.dec.Close(); err != nil {
		return done, fmt.Errorf("%w: hpack: %w", errDesync, err)
	}
	if d.err != nil {
		return done, d.err
	}
	if d.promise {
		return done, nil // pushed streams are not requests the client made
	}
	return c.block(dir, d.blockStream, d.blockEnd, d.fields, ts, done)
}

// block handles a decoded header block on a stream.
func (c *h2Conn) block(dir uint8, sid uint32, end bool, f h2Block, ts uint64, done []h2Done) ([]h2Done, error) {
	st, known := c.streams[sid]
	if dir == 0 {
		// Client to server: new stream ids start requests; a block on a
		// known stream is the request's trailers.
		if !known && sid != 0 {
			if len(c.streams) >= h2MaxStreams {
				return done, fmt.Errorf("%w: more than %d open streams", errDesync, h2MaxStreams)
			}
			c.streams[sid] = h2Stream{start: ts, grpc: f.grpc, grpcStatus: -1}
			done = append(done, h2Done{start: true, grpc: f.grpc})
		}
		return done, nil
	}
	if !known {
		return done, nil // a stream that started before the agent looked
	}
	if f.status >= 200 || f.status == 101 {
		st.status = f.status
	}
	if f.grpcStatus >= 0 {
		st.grpcStatus = f.grpcStatus
	}
	if end {
		return c.finish(sid, &st, ts, done), nil
	}
	c.streams[sid] = st
	return done, nil
}

// mark handles the header of a DATA frame that ends its stream or of
// RST_STREAM.
func (c *h2Conn) mark(dir uint8, hdr [9]byte, ts uint64, done []h2Done) ([]h2Done, error) {
	sid := binary.BigEndian.Uint32(hdr[5:]) & 0x7fffffff
	st, known := c.streams[sid]
	switch hdr[3] {
	case 0x3: // RST_STREAM: ended without an answer to count
		delete(c.streams, sid)
	case 0x0:
		if dir == 1 && known {
			done = c.finish(sid, &st, ts, done)
		}
	default:
		return done, fmt.Errorf("%w: frame type %d sent as a mark", errDesync, hdr[3])
	}
	return done, nil
}

func (c *h2Conn) finish(sid uint32, st *h2Stream, ts uint64, done []h2Done) []h2Done {
	delete(c.streams, sid)
	var lat uint64
	if ts > st.start {
		lat = ts - st.start
	}
	if st.grpc {
		code := st.grpcStatus
		if code < 0 {
			code = grpcCodeFromHTTP(st.status)
		}
		return append(done, h2Done{grpc: true, status: code, latencyNs: lat})
	}
	if st.status < 200 {
		return done // no final status: nothing to count
	}
	return append(done, h2Done{status: st.status, latencyNs: lat})
}

// grpcCodeFromHTTP maps the HTTP status of a gRPC response without
// grpc-status as gRPC's "HTTP to gRPC status code mapping" does.
func grpcCodeFromHTTP(status int) int {
	switch status {
	case 400:
		return GRPCInternal
	case 401:
		return 16 // UNAUTHENTICATED
	case 403:
		return 7 // PERMISSION_DENIED
	case 404:
		return 12 // UNIMPLEMENTED
	case 429, 502, 503, 504:
		return GRPCUnavailable
	}
	return 2 // UNKNOWN
}
