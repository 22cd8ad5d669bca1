package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/spf13/cobra"
)

func newCmdSPFederated(f *Factory) *cobra.Command {
	cmd := newGroup("federated-credential", "Manage the other issuers whose tokens an application signs in with")
	cmd.AddCommand(newCmdSPFederatedAdd(f, nil), newCmdSPFederatedList(f, nil), newCmdSPFederatedRemove(f, nil))
	return cmd
}

// SPFederatedOptions are the parsed arguments of "keyhold identity sp
// federated-credential add|list|remove".
type SPFederatedOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.FederatedDirectory, error)
	Format Format

	SP          string // app id or object id
	Name        string // add: optional; remove: the id or name
	Issuer      string
	Subject     string
	Audience    string
	Description string
}

func federatedCmd(f *Factory, runF func(*SPFederatedOptions) error, run func(*SPFederatedOptions) error, required []string, cmd *cobra.Command) (*cobra.Command, *SPFederatedOptions) {
	opts := &SPFederatedOptions{IO: f.IO, Client: connect(f, func(c *khttp.Client) keyhold.FederatedDirectory { return c })}
	cmd.Args = exactArgs()
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		opts.Ctx, opts.Format = cmd.Context(), f.Format
		if err := requireFlags(cmd, required...); err != nil {
			return err
		}
		if runF != nil {
			return runF(opts)
		}
		return run(opts)
	}
	cmd.Flags().StringVar(&opts.SP, "sp", "", "The application's app (client) id or object `ID`")
	return cmd, opts
}

func newCmdSPFederatedAdd(f *Factory, runF func(*SPFederatedOptions) error) *cobra.Command {
	cmd, opts := federatedCmd(f, runF, spFederatedAddRun, []string{"sp", "issuer", "subject"}, &cobra.Command{
		Use:   "add --sp APP_ID --issuer URL --subject SUBJECT [--audience AUD] [--name NAME]",
		Short: "Trust another issuer's tokens for one subject as the application's sign-in",
		Long: `Add a federated identity credential: a token of the issuer (an https URL,
exactly as the tokens' iss claim names it) whose sub is SUBJECT and whose aud
is the audience (default api://AzureADTokenExchange) signs in as the
application, with no secret. Keyhold reads the issuer's discovery document
and keys at sign-in. The name defaults to one derived from issuer and
subject. Needs the Global Administrator role.`,
		Example: `  keyhold identity sp federated-credential add --sp 6f1c…-app-id \
      --issuer https://platform.example/72f9…/v2.0 \
      --subject /subscriptions/…/resourceGroups/rg/providers/Microsoft.PowerPlatform/enterprisePolicies/cmk`,
	})
	cmd.Flags().StringVar(&opts.Issuer, "issuer", "", "The issuer `URL`, as its tokens' iss claim")
	cmd.Flags().StringVar(&opts.Subject, "subject", "", "The tokens' sub `CLAIM` to trust")
	cmd.Flags().StringVar(&opts.Audience, "audience", keyhold.FederatedAudience, "The tokens' aud `CLAIM`")
	cmd.Flags().StringVar(&opts.Name, "name", "", "The credential's `NAME` (3-120 letters, digits, - and _)")
	cmd.Flags().StringVar(&opts.Description, "description", "", "A `TEXT` describing it")
	return cmd
}

func spFederatedAddRun(opts *SPFederatedOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	fc, err := c.AddFederatedCredential(opts.Ctx, opts.SP, &keyhold.FederatedCredential{Name: opts.Name, Issuer: opts.Issuer,
		Subject: opts.Subject, Audiences: []string{opts.Audience}, Description: opts.Description})
	if err != nil {
		return err
	}
	if opts.Format == FormatJSON {
		return printJSON(opts.IO.Out, fc)
	}
	if opts.Format == FormatID {
		fmt.Fprintln(opts.IO.Out, fc.ID)
		return nil
	}
	fmt.Fprintf(opts.IO.Out, "Added federated credential %s to application %s\n", cell(fc.Name), cell(opts.SP))
	tw := newTable(opts.IO.Out)
	row(tw, "  Id:", fc.ID)
	row(tw, "  Issuer:", fc.Issuer)
	row(tw, "  Subject:", fc.Subject)
	row(tw, "  Audience:", strings.Join(fc.Audiences, " "))
	return tw.Flush()
}

func newCmdSPFederatedList(f *Factory, runF func(*SPFederatedOptions) error) *cobra.Command {
	cmd, _ := federatedCmd(f, runF, spFederatedListRun, []string{"sp"}, &cobra.Command{
		Use:     "list --sp APP_ID",
		Aliases: []string{"ls"},
		Short:   "List an application's federated credentials",
	})
	return cmd
}

func spFederatedListRun(opts *SPFederatedOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	fcs, err := c.ListFederatedCredentials(opts.Ctx, opts.SP)
	if err != nil {
		return err
	}
	switch opts.Format {
	case FormatJSON:
		return printJSON(opts.IO.Out, fcs)
	case FormatID:
		for _, fc := range fcs {
			fmt.Fprintln(opts.IO.Out, fc.ID)
		}
		return nil
	}
	tw := newTable(opts.IO.Out)
	row(tw, "NAME", "ISSUER", "SUBJECT", "AUDIENCE")
	for _, fc := range fcs {
		row(tw, fc.Name, fc.Issuer, fc.Subject, strings.Join(fc.Audiences, " "))
	}
	return tw.Flush()
}

func newCmdSPFederatedRemove(f *Factory, runF func(*SPFederatedOptions) error) *cobra.Command {
	cmd, opts := federatedCmd(f, runF, spFederatedRemoveRun, []string{"sp", "name"}, &cobra.Command{
		Use:   "remove --sp APP_ID --name NAME_OR_ID",
		Short: "Remove a federated credential: the issuer's tokens sign the application in no more",
	})
	cmd.Flags().StringVar(&opts.Name, "name", "", "The credential's `NAME` or id")
	return cmd
}

func spFederatedRemoveRun(opts *SPFederatedOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	if err := c.DeleteFederatedCredential(opts.Ctx, opts.SP, opts.Name); err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "Removed federated credential %s from application %s\n", cell(opts.Name), cell(opts.SP))
	return nil
}
