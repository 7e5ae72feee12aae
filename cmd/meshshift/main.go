// Command meshshift is the one binary of meshshift: the manager (webhook and
// migrator), the node agent, and the CLI.
package main

import (
	"os"

	"github.com/meshshift/meshshift/cmd/meshshift/app"
)

func main() {
	os.Exit(app.Execute())
}
