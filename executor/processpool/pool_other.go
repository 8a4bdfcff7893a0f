//go:build !linux

package processpool

import "os/exec"

func setParentDeath(*exec.Cmd) {}
