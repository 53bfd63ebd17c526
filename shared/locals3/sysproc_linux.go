package locals3

import (
	"os"
	"syscall"
)

// sysProcAttr puts the server in its own process group, so Stop can signal
// it and any children, and has the kernel kill it when the thread that
// started it dies (the Go runtime never retires threads of goroutines that
// are not locked to one, so in practice: when this process dies).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// xattrSupported reports whether files in dir can carry user.* extended
// attributes, which versitygw's posix backend uses for object metadata.
func xattrSupported(dir string) bool {
	f, err := os.CreateTemp(dir, ".xattr-probe-")
	if err != nil {
		return false
	}
	defer os.Remove(f.Name())
	defer f.Close()
	return syscall.Setxattr(f.Name(), "user.bucketvault.probe", []byte("1"), 0) == nil
}
