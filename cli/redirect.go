package cli

import (
	"context"
	"fmt"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/spf13/cobra"
)

// newCmdRedirectURI is "keyhold identity sp redirect-uri": the redirect
// URIs registered on an application, the only places the authorization
// code grant sends its codes to.
func newCmdRedirectURI(f *Factory) *cobra.Command {
	cmd := newGroup("redirect-uri", "Manage the redirect URIs of an application (authorization code sign-in)")
	cmd.AddCommand(
		newCmdRedirect(f, nil, "add", "Register a redirect URI on an application", true, func(o *RedirectOptions, c keyhold.RedirectURIs) error {
			if err := c.AddRedirectURI(o.Ctx, o.AppID, o.URI); err != nil {
				return err
			}
			fmt.Fprintf(o.IO.Out, "Registered %s on application %s\n", o.URI, o.AppID)
			return nil
		}),
		newCmdRedirect(f, nil, "remove", "Remove a redirect URI from an application", true, func(o *RedirectOptions, c keyhold.RedirectURIs) error {
			if err := c.RemoveRedirectURI(o.Ctx, o.AppID, o.URI); err != nil {
				return err
			}
			fmt.Fprintf(o.IO.Out, "Removed %s from application %s\n", o.URI, o.AppID)
			return nil
		}),
		newCmdRedirect(f, nil, "list", "List an application's redirect URIs", false, func(o *RedirectOptions, c keyhold.RedirectURIs) error {
			uris, err := c.ListRedirectURIs(o.Ctx, o.AppID)
			if err != nil {
				return err
			}
			if o.Format == FormatJSON {
				return printJSON(o.IO.Out, uris)
			}
			for _, u := range uris {
				fmt.Fprintln(o.IO.Out, u)
			}
			return nil
		}),
	)
	return cmd
}

// RedirectOptions are the parsed arguments of "keyhold identity sp
// redirect-uri add|remove|list".
type RedirectOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.RedirectURIs, error)
	Format Format

	AppID string
	URI   string
}

func newCmdRedirect(f *Factory, runF func(*RedirectOptions) error, use, short string, needURI bool, run func(*RedirectOptions, keyhold.RedirectURIs) error) *cobra.Command {
	opts := &RedirectOptions{IO: f.IO, Client: connect(f, func(c *khttp.Client) keyhold.RedirectURIs { return c })}
	required := []string{"app-id"}
	usage := use + " --app-id APP_ID"
	if needURI {
		required = append(required, "uri")
		usage += " --uri URI"
	}
	cmd := &cobra.Command{
		Use:     usage,
		Short:   short,
		Long:    short + ". Needs the Global Administrator role. A redirect URI is https, or http on 127.0.0.1, [::1] or localhost.",
		Example: "  keyhold identity sp redirect-uri add --app-id APP_ID --uri https://app.contoso.example/signed-in",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if err := requireFlags(cmd, required...); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			c, err := opts.Client()
			if err != nil {
				return err
			}
			return run(opts, c)
		},
	}
	cmd.Flags().StringVar(&opts.AppID, "app-id", "", "The application's client `ID` (appId)")
	if needURI {
		cmd.Flags().StringVar(&opts.URI, "uri", "", "The redirect `URI`")
	}
	return cmd
}
