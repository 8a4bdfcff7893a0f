// Command worker serves jetpool's built-in tasks to a pool: see 'worker --help'.
package main

import (
	"os"

	"github.com/jetpool/jetpool/cmd/worker/workercli"
)

func main() {
	os.Exit(workercli.Main(os.Args[1:], os.Stderr))
}
