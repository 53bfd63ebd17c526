package rie

import "syscall"

// sysProcAttr puts the emulator in its own process group, so Stop can
// signal it, and has the kernel kill it when the thread that started it
// dies (in practice: when this process dies).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
