package cli

import (
	"context"
	"fmt"

	"github.com/keyhold/keyhold"
	"github.com/spf13/cobra"
)

func newCmdProvider(f *Factory) *cobra.Command {
	cmd := newGroup("provider", "Register resource providers for a subscription")
	cmd.Long = `Register resource provider namespaces for a subscription, as Azure requires
before a subscription holds their resources: Microsoft.KeyVault for key vaults,
Microsoft.PowerPlatform for enterprise policies. Microsoft.Authorization and
Microsoft.Resources are always registered.`
	cmd.AddCommand(
		newCmdProviderRegister(f, nil),
		newCmdProviderShow(f, nil),
		newCmdProviderList(f, nil),
	)
	return cmd
}

// ProviderOptions are the parsed arguments of "keyhold provider register"
// and "keyhold provider show".
type ProviderOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.ARMClient, error)
	Format Format
	// Subscription is --subscription; LoginSubscription the default.
	Subscription      string
	LoginSubscription func() (string, error)

	Namespace string
}

func newCmdProviderRegister(f *Factory, runF func(*ProviderOptions) error) *cobra.Command {
	return newCmdProviderOne(f, runF, "register", "Register a namespace (needs Owner or Contributor)", providerRegisterRun)
}

func newCmdProviderShow(f *Factory, runF func(*ProviderOptions) error) *cobra.Command {
	return newCmdProviderOne(f, runF, "show", "Show a namespace's registration state", providerShowRun)
}

// newCmdProviderOne builds "provider register" or "provider show", which
// take the same arguments.
func newCmdProviderOne(f *Factory, runF func(*ProviderOptions) error, verb, short string, run func(*ProviderOptions) error) *cobra.Command {
	opts := &ProviderOptions{IO: f.IO, Client: armServices(f), LoginSubscription: loginSubscriptionID(f)}
	cmd := &cobra.Command{
		Use:     verb + " NAMESPACE",
		Short:   short,
		Example: "  keyhold provider " + verb + " Microsoft.PowerPlatform",
		Args:    exactArgs("namespace"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx, opts.Format, opts.Namespace = cmd.Context(), f.Format, args[0]
			if runF != nil {
				return runF(opts)
			}
			return run(opts)
		},
	}
	subscriptionFlagOn(cmd, &opts.Subscription)
	return cmd
}

func providerRegisterRun(opts *ProviderOptions) error {
	return providerOne(opts, func(c keyhold.ARMClient, sub string) (*keyhold.ProviderRegistration, error) {
		return c.RegisterProvider(opts.Ctx, sub, opts.Namespace)
	})
}

func providerShowRun(opts *ProviderOptions) error {
	return providerOne(opts, func(c keyhold.ARMClient, sub string) (*keyhold.ProviderRegistration, error) {
		return c.Provider(opts.Ctx, sub, opts.Namespace)
	})
}

func providerOne(opts *ProviderOptions, call func(keyhold.ARMClient, string) (*keyhold.ProviderRegistration, error)) error {
	sub, err := resolveSubscription(opts.Subscription, opts.LoginSubscription)
	if err != nil {
		return err
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	p, err := call(c, sub)
	if err != nil {
		return err
	}
	if opts.Format == FormatJSON {
		return printJSON(opts.IO.Out, p)
	}
	fmt.Fprintf(opts.IO.Out, "%s: %s in subscription %s\n", cell(p.Namespace), cell(p.State), cell(sub))
	return nil
}

// ProviderListOptions are the parsed arguments of "keyhold provider list".
type ProviderListOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.ARMClient, error)
	Format Format
	// Subscription is --subscription; LoginSubscription the default.
	Subscription      string
	LoginSubscription func() (string, error)
}

func newCmdProviderList(f *Factory, runF func(*ProviderListOptions) error) *cobra.Command {
	opts := &ProviderListOptions{IO: f.IO, Client: armServices(f), LoginSubscription: loginSubscriptionID(f)}
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the namespaces and their registration states",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if runF != nil {
				return runF(opts)
			}
			return providerListRun(opts)
		},
	}
	subscriptionFlagOn(cmd, &opts.Subscription)
	return cmd
}

func providerListRun(opts *ProviderListOptions) error {
	sub, err := resolveSubscription(opts.Subscription, opts.LoginSubscription)
	if err != nil {
		return err
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	ps, err := c.ListProviders(opts.Ctx, sub)
	if err != nil {
		return err
	}
	if opts.Format == FormatJSON {
		return printJSON(opts.IO.Out, ps)
	}
	tw := newTable(opts.IO.Out)
	row(tw, "NAMESPACE", "STATE")
	for _, p := range ps {
		row(tw, p.Namespace, p.State)
	}
	return tw.Flush()
}
