//go:build unix

package restore

import (
	"errors"
	"syscall"
)

// processGone says whether no process has the id (signal 0 checks it).
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
