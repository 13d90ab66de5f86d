/** Git addresses as they may be shown or recorded: without the user info that can hold a token. */
import { CommandFailedError } from '@cosa/schema';

/**
 * `https://user:token@host/x.git` → `https://host/x.git`. Only URL-form addresses carry user
 * info that can be a secret; scp-like `git@host:path` and local paths are returned unchanged.
 */
export function redactGitUrl(url: string): string {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*@)(.*)$/is.exec(url);
  return m ? `${m[1]}${m[3]}` : url;
}

/** Removes the user info of every URL inside free text (git's error output). */
export function redactGitUrlsIn(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/\s'"@]*@/gi, '$1');
}

/** The same command failure with every URL's user info removed from command, stderr and message. */
export function redactCommandError(e: unknown): unknown {
  if (!(e instanceof CommandFailedError)) return e;
  const command = e.command.map(redactGitUrlsIn);
  return new CommandFailedError(command, e.exitCode, redactGitUrlsIn(e.stderr), { code: e.code, message: redactGitUrlsIn(e.message), ...(e.hint ? { hint: e.hint } : {}) });
}
