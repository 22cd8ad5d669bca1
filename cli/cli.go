// Package cli implements the keyhold command line: "keyhold serve" runs the
// server, and the other commands (login, env, row, file, audit) talk to a
// running server through the http package's Go client, which implements the
// same service contracts as the server's platform.
//
// Each command is built by a newCmdX(f, runF) function that parses flags and
// arguments into an XOptions value and then calls runF, or xRun when runF is
// nil. Tests pass their own runF to check parsing apart from behaviour.
//
// # Exit codes
//
// Run returns 0 on success, 1 when a command fails, and 2 when the command
// line itself is wrong (unknown command or flag, wrong number of arguments,
// a missing or bad flag value).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/keyhold/keyhold/server"
	"github.com/spf13/cobra"
)

// Run runs the keyhold command line with args (without the program name)
// and returns the process exit code: 0 on success, 1 when the command fails,
// 2 for a usage error. Errors are printed to stderr as "Error: <code>:
// <message>".
//
// The first SIGINT or SIGTERM cancels the command's context, so a download
// removes its temporary file and "keyhold serve" shuts down cleanly; a second
// one kills the process as usual.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // restore the default handling, so a second signal kills
	}()
	f := NewFactory(&IOStreams{In: stdin, Out: stdout, ErrOut: stderr}, os.Getenv)
	return run(ctx, f, args)
}

// run executes args against the commands built on f and maps the outcome to
// an exit code.
func run(ctx context.Context, f *Factory, args []string) int {
	return execute(ctx, f, newCmdRoot(f), args)
}

// execute runs args against root, whose commands are built on f, and maps
// the outcome to an exit code.
func execute(ctx context.Context, f *Factory, root *cobra.Command, args []string) int {
	defer f.closeIdle()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		path := root.CommandPath()
		if cmd != nil {
			path = cmd.CommandPath()
		}
		fmt.Fprintf(f.IO.ErrOut, "Error: %s\nRun '%s --help' for usage.\n", ue.msg, path)
		return 2
	}
	fmt.Fprintf(f.IO.ErrOut, "Error: %s\n", errorText(err))
	return 1
}

// errorText renders a failure for the user. A *keyhold.Error reads
// "<code>: <message>", after any context wrapped around it; its client-side
// cause (the HTTP status and request id that the server's log knows the
// request by) follows on a line of its own, unless the message already says
// it.
func errorText(err error) string {
	var ke *keyhold.Error
	if !errors.As(err, &ke) {
		return err.Error()
	}
	s := ke.Code + ": " + ke.Message
	if outer := err.Error(); outer != ke.Error() {
		prefix, ok := strings.CutSuffix(outer, ke.Error())
		if !ok {
			return outer // wrapped in a way we can't take apart
		}
		s = prefix + s
	}
	if ke.Err != nil {
		root := ke.Err
		for u := errors.Unwrap(root); u != nil; u = errors.Unwrap(root) {
			root = u
		}
		if !strings.Contains(ke.Message, root.Error()) {
			s += "\n  (" + ke.Err.Error() + ")"
		}
	}
	return s
}

// IOStreams are the standard streams a command reads and writes.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// Factory holds what the commands depend on, so tests can replace any part.
// A Factory serves one Run; it is not safe for concurrent use.
type Factory struct {
	IO *IOStreams
	// Getenv reads an environment variable (os.Getenv in Run).
	Getenv func(string) string
	// Home returns the directory holding login.json: $KEYHOLD_HOME, else
	// ~/.keyhold.
	Home func() (string, error)
	// Dial connects to a server with a login's credentials.
	Dial func(*Login) (*khttp.Client, error)
	// Client connects with the saved login. It returns ErrNotLoggedIn when
	// there is none. The client implements every contract the commands use;
	// each command group takes it as the narrow contract its options name
	// (see connect), so tests can pass a fake.
	Client func() (*khttp.Client, error)
	// Serve runs a server until its context ends (server.Run).
	Serve func(context.Context, server.Config) error
	// Format is the value of the global -o/--output flag.
	Format Format

	// dialled are the clients Dial made, whose idle connections execute
	// closes when the command ends: run in process (tests, embedders),
	// commands would otherwise leave them open on the server, which
	// bounds the connections one address may hold.
	mu      sync.Mutex
	dialled []*khttp.Client
}

// closeIdle closes the idle connections of the clients f dialled.
func (f *Factory) closeIdle() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.dialled {
		c.HTTPClient().CloseIdleConnections()
	}
	f.dialled = nil
}

// NewFactory returns the Factory that Run uses: it reads the environment
// through getenv and connects with the http package's Client.
func NewFactory(streams *IOStreams, getenv func(string) string) *Factory {
	f := &Factory{IO: streams, Getenv: getenv, Serve: server.Run, Format: FormatTable}
	f.Home = func() (string, error) {
		if h := f.Getenv("KEYHOLD_HOME"); h != "" {
			return h, nil
		}
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("finding the home directory: %w: set KEYHOLD_HOME", err)
		}
		return filepath.Join(home, ".keyhold"), nil
	}
	f.Dial = func(l *Login) (*khttp.Client, error) {
		var ca []byte
		if l.CAPEM != "" {
			ca = []byte(l.CAPEM)
		}
		var c *khttp.Client
		var err error
		if l.RefreshToken != "" {
			// A person's login: each refresh rotates the token, and the
			// saved login keeps the newest (a reused one is refused).
			c, err = khttp.NewUserClient(l.URL, ca, l.TenantID, l.ClientID, l.RefreshToken, func(rt string) error {
				home, err := f.Home()
				if err != nil {
					return err
				}
				l.RefreshToken = rt
				return saveLogin(home, l)
			})
		} else {
			c, err = khttp.NewClient(l.URL, ca, l.TenantID, l.ClientID, l.ClientSecret)
		}
		if err == nil {
			f.mu.Lock()
			f.dialled = append(f.dialled, c)
			f.mu.Unlock()
		}
		return c, err
	}
	f.Client = func() (*khttp.Client, error) {
		home, err := f.Home()
		if err != nil {
			return nil, err
		}
		l, err := loadLogin(home)
		if err != nil {
			return nil, err
		}
		return f.Dial(l)
	}
	return f
}

// connect returns a function that connects with the saved login, as
// Factory.Client does, and gives the client as the contract T that a
// command's options take: as is a conversion the compiler checks, so a
// command can't find at run time that the client lacks a method.
func connect[T any](f *Factory, as func(*khttp.Client) T) func() (T, error) {
	return func() (T, error) {
		c, err := f.Client()
		if err != nil {
			var none T
			return none, err
		}
		return as(c), nil
	}
}

// services connects for the environment, data and audit commands.
func services(f *Factory) func() (keyhold.EnvironmentClient, error) {
	return connect(f, func(c *khttp.Client) keyhold.EnvironmentClient { return c })
}

// newCmdRoot returns the keyhold command with all its subcommands.
func newCmdRoot(f *Factory) *cobra.Command {
	root := newRootShell(f)
	root.AddCommand(
		newCmdServe(f, nil),
		newCmdLogin(f, nil),
		newCmdLogout(f, nil),
		addBackupEnvCommands(addLockEnvCommands(addCMKEnvCommands(newCmdEnv(f), f), f), f),
		newCmdRow(f),
		newCmdFile(f),
		newCmdAudit(f),
		newCmdKeyVault(f),
		newCmdKey(f),
		newCmdIdentity(f),
		newCmdGroup(f),
		newCmdProvider(f),
		newCmdRole(f),
		newCmdOperation(f),
		addCMKPolicyCommands(newCmdPolicy(f), f),
		newCmdDeployment(f),
		newCmdEvents(f),
		newCmdTenant(f),
		newCmdBYOK(f),
		newCmdFlow(f),
		newCmdConnection(f),
		newCmdDoctor(f, nil),
		newCmdAdmin(f),
		newCmdBench(f, nil),
		newCmdVersion(f),
	)
	return root
}

// newRootShell returns the root command with the global flags and error
// handling but no subcommands; tests hang a single command under it.
func newRootShell(f *Factory) *cobra.Command {
	root := newGroup("keyhold", "Keyhold: customer-managed keys for Power Platform-style environments")
	root.Long = `Keyhold runs a Power Platform-style platform whose environment data is always
encrypted at rest, under the platform's key or a customer-managed key.

Start a server with "keyhold serve", then log in with the bootstrap file it
writes ("keyhold login --bootstrap <data>/bootstrap.json") and manage
environments and their data with the other commands.`
	root.SilenceUsage = true
	root.SilenceErrors = true
	root.SetIn(f.IO.In)
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &usageError{msg: err.Error()}
	})
	root.PersistentFlags().VarP(&f.Format, "output", "o", "Output format: table, json, or id (only the ids, for scripts)")
	return root
}

// newGroup returns a command that only holds subcommands. Run with no
// arguments it prints its help; with an unknown subcommand it fails with a
// usage error (cobra would print the help and succeed).
func newGroup(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		// SuggestionsFor, unlike cobra's own lookup, needs this set.
		SuggestionsMinimumDistance: 2,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += "; did you mean " + strings.Join(s, " or ") + "?"
			}
			return &usageError{msg: msg}
		},
	}
}

// usageError is a mistake on the command line; Run exits 2 on it.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// exactArgs accepts exactly the named positional arguments, and names the
// missing or surplus ones in its usage error.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < len(names):
			missing := make([]string, 0, len(names)-len(args))
			for _, n := range names[len(args):] {
				missing = append(missing, "<"+n+">")
			}
			return usageErrorf("%q is missing %s", cmd.CommandPath(), strings.Join(missing, " "))
		case len(args) > len(names):
			return usageErrorf("%q takes %d arguments, got unexpected %q", cmd.CommandPath(), len(names), args[len(names)])
		}
		return nil
	}
}

// ErrNotLoggedIn is returned by commands that need a server when no login is
// saved.
var ErrNotLoggedIn = errors.New("not logged in: run keyhold login --bootstrap <data>/bootstrap.json")
