// Where the C parts are: native-bindings/build in a source tree (npm install builds them there),
// or VMM_COMPAT_NATIVE_DIR for an installed package layout.
import fs from 'node:fs';
import path from 'node:path';

export function nativeBuildDir(): string {
  const fromEnv = process.env.VMM_COMPAT_NATIVE_DIR;
  if (fromEnv) return fromEnv;
  // dist/src/native-paths.js -> <root>/native-bindings/build
  return path.resolve(__dirname, '..', '..', 'native-bindings', 'build');
}

/** Where a package install puts the interposer (docs/install.md). */
export const INSTALLED_INTERPOSER = '/usr/local/lib/vmm-compat/libvmmcompat.so';

/** The interposer: the in-tree build if there is one, else the installed path. */
export function defaultInterposer(): string {
  const built = nativeArtifact('libvmmcompat.so');
  return fs.existsSync(built) || process.env.VMM_COMPAT_NATIVE_DIR ? built : INSTALLED_INTERPOSER;
}

export function nativeArtifact(name: string, variant: 'normal' | 'asan' = 'normal'): string {
  const dir = variant === 'asan' ? path.join(nativeBuildDir(), 'asan') : nativeBuildDir();
  return path.join(dir, name);
}

export function requireArtifact(name: string, variant: 'normal' | 'asan' = 'normal'): string {
  const file = nativeArtifact(name, variant);
  if (!fs.existsSync(file)) {
    throw new Error(
      `${file} is missing: build the C parts (needs cc and make): "npm run build" in a source checkout, ` +
        '"npm rebuild vmm-compat" where the package is installed',
    );
  }
  return file;
}

export const ARTIFACTS = {
  bridge: 'libvmmlab_bridge.so',
  interposer: 'libvmmcompat.so',
  bhyve13: 'bhyve13',
  bhyve135: 'bhyve135',
  bhyve14: 'bhyve14',
  bhyve143: 'bhyve143',
  bhyve14cur: 'bhyve14cur',
  /** The 13.1, 14.3 and 14-CURRENT models without an ELF ABI tag (a foreign or stripped bhyve). */
  untaggedBhyve13: 'untagged/bhyve13',
  untaggedBhyve143: 'untagged/bhyve143',
  untaggedBhyve14cur: 'untagged/bhyve14cur',
  bhyveload13: 'bhyveload13',
} as const;
