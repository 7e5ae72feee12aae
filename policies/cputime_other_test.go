//go:build !unix

package policies

import "time"

func processCPU() time.Duration { return 0 }
