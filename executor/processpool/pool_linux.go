package processpool

import (
	"os/exec"
	"syscall"
)

// setParentDeath has the kernel kill a worker process if this one dies, so no
// worker outlives its pool.
func setParentDeath(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
