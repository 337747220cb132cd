// Package cli connects cobra commands to viper so every flag can also come from a KUBEMESOS_* environment
// variable or a config file, with one precedence everywhere: flag > environment > file > default.
package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// EnvPrefix is the prefix of every environment variable kubemesos reads.
const EnvPrefix = "KUBEMESOS"

// ConfigFlag names the flag that points at a YAML/JSON/TOML config file whose keys are flag names.
const ConfigFlag = "config"

// EnvName is the environment variable that sets the flag called name, e.g. KUBEMESOS_FAILOVER_TIMEOUT.
func EnvName(name string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(name))
}

// AddConfigFlag adds --config to a command's flags.
func AddConfigFlag(fs *pflag.FlagSet) {
	fs.String(ConfigFlag, "", "config file (YAML, JSON or TOML) whose keys are the flag names; env "+EnvName(ConfigFlag))
}

// Apply fills every flag of cmd that was not set on the command line from the environment or the config
// file. Call it at the start of RunE, before reading the bound Config.
func Apply(cmd *cobra.Command) error {
	fs := cmd.Flags()
	v := viper.New()
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_", ".", "_"))
	v.AutomaticEnv()
	if err := v.BindPFlags(fs); err != nil {
		return fmt.Errorf("binding flags: %w", err)
	}
	if path := v.GetString(ConfigFlag); path != "" {
		v.SetConfigFile(path)
		if err := v.ReadInConfig(); err != nil {
			return fmt.Errorf("reading config file %s: %w", path, err)
		}
	}
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == ConfigFlag || !v.IsSet(f.Name) {
			return
		}
		value := v.GetString(f.Name)
		if strings.HasSuffix(f.Value.Type(), "Slice") || strings.HasSuffix(f.Value.Type(), "Array") {
			value = strings.Join(v.GetStringSlice(f.Name), ",")
		}
		if value == f.Value.String() {
			return
		}
		if err := fs.Set(f.Name, value); err != nil {
			errs = append(errs, fmt.Errorf("%s (from %s or the config file): %w", f.Name, EnvName(f.Name), err))
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("invalid configuration: %v", errs)
	}
	return nil
}

// DocumentEnv appends "(env KUBEMESOS_X)" to every flag's usage so --help lists all three ways to set it.
func DocumentEnv(fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) {
		if !strings.Contains(f.Usage, EnvPrefix+"_") {
			f.Usage = fmt.Sprintf("%s (env %s)", f.Usage, EnvName(f.Name))
		}
	})
}
