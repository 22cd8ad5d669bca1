// Command keyhold is Keyhold's server and command line client in one binary.
// Run "keyhold --help" for its commands; package cli implements them.
package main

import (
	"context"
	"os"

	"github.com/keyhold/keyhold/cli"
)

func main() {
	os.Exit(cli.Run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
