package app

import (
	"errors"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

// Exit codes of the CLI.
const (
	// ExitOK: the command did what was asked and found nothing wrong.
	ExitOK = 0
	// ExitError: the command failed (bad flags, bad manifests, API errors).
	ExitError = 1
	// ExitBlocked: precheck found a blocker.
	ExitBlocked = 2
	// ExitSkipped: plan, explain or precheck ran, but left out objects it
	// reads and could not decode (listed on stderr as "skipped: ..."); the
	// answer may miss what those objects would change. ExitBlocked wins.
	ExitSkipped = 3
)

// exitError ends the command with a code, after its output was printed.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// Execute runs the CLI with the process's arguments and returns its exit code.
func Execute() int {
	return Run(os.Args[1:], os.Stdout, os.Stderr)
}

// Run runs the CLI with args, writing to stdout and stderr, and returns the
// exit code: ExitOK, ExitError, ExitBlocked or ExitSkipped.
func Run(args []string, stdout, stderr io.Writer) int {
	cmd := NewRootCommand()
	// Installed (or linked) as kubectl-meshshift, it is the kubectl plugin
	// `kubectl meshshift`; help and usage say so.
	if filepath.Base(os.Args[0]) == "kubectl-meshshift" {
		if cmd.Annotations == nil {
			cmd.Annotations = map[string]string{}
		}
		cmd.Annotations[cobra.CommandDisplayNameAnnotation] = "kubectl meshshift"
	}
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	err := cmd.Execute()
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return ExitError
}
