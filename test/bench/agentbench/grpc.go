package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The gRPC workload: grpc-go's health service over h2c on loopback. Each
// run dials a new connection (so that the agent sees its preface) and makes
// calls from grpcWorkers goroutines, every fourth a server-streaming Watch
// (three messages, then the status), the others unary Check.

const grpcWorkers = 4

type benchHealth struct {
	healthpb.UnimplementedHealthServer
}

func (benchHealth) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (benchHealth) Watch(_ *healthpb.HealthCheckRequest, s grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	for range 3 {
		if err := s.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}); err != nil {
			return err
		}
	}
	return nil
}

type grpcServer struct {
	ln  net.Listener
	srv *grpc.Server
	wg  sync.WaitGroup
}

func startGRPCServer() (*grpcServer, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s := &grpcServer{ln: ln, srv: grpc.NewServer()}
	healthpb.RegisterHealthServer(s.srv, benchHealth{})
	s.wg.Add(1)
	go func() { defer s.wg.Done(); _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *grpcServer) addr() string { return s.ln.Addr().String() }

func (s *grpcServer) close() {
	s.srv.Stop()
	s.wg.Wait()
}

// grpcCalls returns gRPC calls per second over d.
func grpcCalls(addr string, d time.Duration) (float64, error) {
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, fmt.Errorf("grpc client: %w", err)
	}
	defer conn.Close()
	c := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), d+10*time.Second)
	defer cancel()
	if _, err := c.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil { // connect
		return 0, fmt.Errorf("first call: %w", err)
	}
	var n atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, grpcWorkers)
	start := time.Now()
	for w := range grpcWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Since(start) < d; i++ {
				if w == 0 && i%3 == 0 {
					st, err := c.Watch(ctx, &healthpb.HealthCheckRequest{})
					for err == nil {
						_, err = st.Recv()
					}
					if !errors.Is(err, io.EOF) {
						errs <- fmt.Errorf("watch: %w", err)
						return
					}
				} else if _, err := c.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
					errs <- fmt.Errorf("check: %w", err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(n.Load()) / time.Since(start).Seconds(), nil
}
