/** Entry point of the `cosa` command; returns the exit status. */
export async function main(_argv: string[]): Promise<number> {
  return 0;
}
