package agent

import (
	"fmt"
	"sort"
	"strings"
)

// ImageCommandsFlag is a pflag.Value (and flag.Value) for repeated `--image-command image=cmd` flags;
// it fills Config.ImageCommands.
type ImageCommandsFlag map[string]string

// ParseImageCommand splits "image=command" (the command may itself contain '=').
func ParseImageCommand(s string) (image, command string, err error) {
	image, command, ok := strings.Cut(s, "=")
	image, command = strings.TrimSpace(image), strings.TrimSpace(command)
	if !ok || image == "" || command == "" {
		return "", "", fmt.Errorf("image command %q: want image=command", s)
	}
	return image, command, nil
}

// Set adds one image=command pair.
func (f ImageCommandsFlag) Set(s string) error {
	image, cmd, err := ParseImageCommand(s)
	if err != nil {
		return err
	}
	f[image] = cmd
	return nil
}

// String renders the pairs sorted by image.
func (f ImageCommandsFlag) String() string {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+f[k])
	}
	return strings.Join(parts, ",")
}

// Type names the flag's value type for pflag's help output.
func (f ImageCommandsFlag) Type() string { return "image=command" }
