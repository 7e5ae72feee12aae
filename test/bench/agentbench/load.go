package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// The request/response pair is a small HTTP/1.1 keep-alive exchange, so the
// programs' HTTP path runs for every message (the realistic worst case).
var (
	request  = []byte("GET /bench HTTP/1.1\r\nHost: bench\r\nUser-Agent: agentbench\r\n\r\n")
	response = []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")
)

// server accepts on a loopback listener: in stream mode it discards, else it
// answers every request with a response.
type server struct {
	ln net.Listener
	wg sync.WaitGroup
}

func startServer(stream bool) (*server, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s := &server{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				if stream {
					_, _ = io.Copy(io.Discard, c)
					return
				}
				buf := make([]byte, len(request))
				for {
					if _, err := io.ReadFull(c, buf); err != nil {
						return
					}
					if _, err := c.Write(response); err != nil {
						return
					}
				}
			}()
		}
	}()
	return s, nil
}

func (s *server) addr() string { return s.ln.Addr().String() }

func (s *server) close() {
	s.ln.Close()
	s.wg.Wait()
}

// stream writes 64 KiB chunks for d and returns bytes per second.
func stream(addr string, d time.Duration) (float64, error) {
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		return 0, fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	chunk := bytes.Repeat([]byte("s"), 64<<10)
	var n int64
	start := time.Now()
	for time.Since(start) < d {
		w, err := c.Write(chunk)
		if err != nil {
			return 0, fmt.Errorf("write: %w", err)
		}
		n += int64(w)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// rr does request/response exchanges on one connection for d and returns
// exchanges per second.
func rr(addr string, d time.Duration) (float64, error) {
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		return 0, fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	buf := make([]byte, len(response))
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		if _, err := c.Write(request); err != nil {
			return 0, fmt.Errorf("write: %w", err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return 0, fmt.Errorf("read: %w", err)
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// crr connects, exchanges one request/response and closes, for d, and
// returns connections per second.
func crr(addr string, d time.Duration) (float64, error) {
	buf := make([]byte, len(response))
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			return 0, fmt.Errorf("dial: %w", err)
		}
		if _, err := c.Write(request); err != nil {
			c.Close()
			return 0, fmt.Errorf("write: %w", err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			c.Close()
			return 0, fmt.Errorf("read: %w", err)
		}
		// Close with RST-free teardown; linger default.
		c.Close()
		n++
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
