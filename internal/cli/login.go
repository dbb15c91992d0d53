package cli

import (
	"bufio"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/remote"
)

func newLoginCmd(env Env, g *globals) *cobra.Command {
	var user string
	var stdin bool
	var insecure []string
	var ca string
	c := &cobra.Command{
		Use:   "login REGISTRY -u USER --password-stdin",
		Short: "Log in to a registry; writes a docker-compatible config.json",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("login needs exactly one REGISTRY")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if user == "" {
				return usagef("login: --username (-u) is required")
			}
			if !stdin {
				return usagef("login: pass the password on standard input with --password-stdin")
			}
			bounds, err := readHTTPBounds(env.Getenv)
			if err != nil {
				return err
			}
			line, err := bufio.NewReader(env.Stdin).ReadString('\n')
			if err != nil && line == "" {
				return usagef("login: no password on standard input")
			}
			password := strings.TrimRight(line, "\r\n")
			if password == "" {
				return usagef("login: empty password on standard input")
			}
			cl, err := remote.New(remote.Options{
				Insecure:              insecure,
				CAFile:                ca,
				DockerConfigDir:       dockerConfigDir(env.Getenv),
				Logger:                g.logger(env.Stderr),
				ResponseHeaderTimeout: bounds.header,
				IdleTimeout:           bounds.idle,
			})
			if err != nil {
				return usagef("%v", err)
			}
			if err := cl.Login(c.Context(), args[0], user, password); err != nil {
				return err
			}
			c.Println("Login succeeded")
			return nil
		},
	}
	c.Flags().StringVarP(&user, "username", "u", "", "user name")
	c.Flags().BoolVar(&stdin, "password-stdin", false, "read the password from standard input")
	c.Flags().StringArrayVar(&insecure, "insecure-registry", nil, "HOST:PORT reached over plain HTTP")
	c.Flags().StringVar(&ca, "registry-ca", "", "PEM file of an extra CA")
	return c
}
