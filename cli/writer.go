package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// out writes formatted text and keeps the first write error, so printers
// check it once at the end.
type out struct {
	w   io.Writer
	err error
}

func (o *out) f(format string, args ...any) {
	if o.err == nil {
		_, o.err = fmt.Fprintf(o.w, format, args...)
	}
}

func (o *out) ln(args ...any) {
	if o.err == nil {
		_, o.err = fmt.Fprintln(o.w, args...)
	}
}

// table is an aligned table written through a tabwriter.
type table struct {
	out
	tw *tabwriter.Writer
}

func newTable(w io.Writer) *table {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	return &table{out: out{w: tw}, tw: tw}
}

// flush writes the table and returns the first error.
func (t *table) flush() error {
	if t.err != nil {
		return t.err
	}
	return t.tw.Flush()
}
