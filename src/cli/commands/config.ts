/**
 * `sat config`: print the resolved config (defaults < --config < --set), the commented defaults,
 * or the list of keys. Doubles as a validator: a bad config exits 2 with a one-line error.
 */
import { configToYaml, defaultsYaml } from "../../config/render.js";
import { listKeys, parsedDefaults } from "../../config/schema.js";
import type { CommandSpec } from "../command.js";

export const config: CommandSpec = {
  name: "config",
  summary: "print the resolved config, the commented defaults (--print-defaults) or every key (--list-keys)",
  flags: "config",
  options: [
    {
      flags: "--print-defaults",
      description: "the full default config as YAML, each key with its help as a comment",
    },
    { flags: "--list-keys", description: "every key with its default, type and help" },
  ],
  run(ctx) {
    const json = ctx.flags.json;
    if (ctx.options.printDefaults) {
      ctx.out(json ? JSON.stringify(parsedDefaults(), null, 2) : defaultsYaml());
      return;
    }
    if (ctx.options.listKeys) {
      const keys = listKeys();
      if (json) {
        ctx.out(
          JSON.stringify(
            keys.map(({ path, default: d, type, description }) => ({
              key: path,
              default: d,
              type,
              description,
            })),
            null,
            2,
          ),
        );
        return;
      }
      const width = Math.max(...keys.map((k) => k.path.length));
      for (const k of keys)
        ctx.out(`${k.path.padEnd(width)}  ${JSON.stringify(k.default)}  [${k.type}]  ${k.description}`);
      return;
    }
    ctx.out(json ? JSON.stringify(ctx.config, null, 2) : configToYaml(ctx.config!));
  },
};
