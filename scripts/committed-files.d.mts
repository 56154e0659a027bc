// Types of scripts/committed-files.mjs, for the tests that import it.
export function committedFiles(outDir: string, dataset: string, afterRunId?: string): Promise<{ lastRunId: string | null; files: string[] }>;
