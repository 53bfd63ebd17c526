//go:build unix && !linux

package locals3

import "syscall"

// sysProcAttr puts the server in its own process group, so Stop can signal
// it and any children. Only Linux can also kill it when this process dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// xattrSupported assumes user extended attributes work off Linux.
func xattrSupported(string) bool { return true }
