package bpf

// Regenerate with `make generate` (needs Debian's clang-19 and llvm-19). The
// generated Go files and objects are committed so that building needs no clang.
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -cflags "-O2 -g -Wall -Werror -mcpu=v3" -target amd64,arm64 -type cg_stats agent agent.c -- -I./headers
