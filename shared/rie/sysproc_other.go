//go:build unix && !linux

package rie

import "syscall"

// sysProcAttr puts the emulator in its own process group, so Stop can
// signal it. Only Linux can also kill it when this process dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
