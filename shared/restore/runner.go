package restore

import (
	"fmt"
	"os"
)

// Runner is the process running a job, as its record names it: a run of
// the same job on the same host after that process is gone (a killed
// CLI) knows the job is interrupted at once, without waiting for its
// heartbeat to go stale.
type Runner struct {
	Host string `json:"host,omitempty"`
	PID  int    `json:"pid,omitempty"`
	// Execution is the restore state machine's execution running the job
	// (its ARN): its steps run in many processes, none of which is the
	// runner, so a RUNNING record of an execution reads as interrupted
	// only past the execution's deadline (Report.Deadline).
	Execution string `json:"execution,omitempty"`
}

func thisRunner() *Runner {
	host, err := os.Hostname()
	if err != nil {
		return nil
	}
	return &Runner{Host: host, PID: os.Getpid()}
}

// gone says whether the runner is a process of this host that no longer
// runs.
func (r *Runner) gone() bool {
	if r == nil || r.PID <= 0 {
		return false
	}
	host, err := os.Hostname()
	if err != nil || host != r.Host || r.PID == os.Getpid() {
		return false
	}
	return processGone(r.PID)
}

func (r *Runner) String() string {
	if r.Execution != "" {
		return "execution " + r.Execution
	}
	return fmt.Sprintf("process %d on %s", r.PID, r.Host)
}

// execution is the execution running the job, "" for a process.
func (r *Runner) execution() string {
	if r == nil {
		return ""
	}
	return r.Execution
}
