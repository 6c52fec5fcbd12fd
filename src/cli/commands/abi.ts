import type { Command } from 'commander';

// Placeholder until the ABI tables land: registers nothing.
export function registerAbiCommand(_program: Command): void {}
