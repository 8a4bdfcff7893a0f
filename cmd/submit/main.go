// Command submit runs tasks on a jetpool worker pool: see 'submit --help'.
package main

import (
	"os"

	"github.com/jetpool/jetpool/cmd/submit/submitcli"
)

func main() {
	os.Exit(submitcli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
