<#
.SYNOPSIS
    Run a btc-laptop-agents session under the watchdog on Windows.

.DESCRIPTION
    A thin wrapper: it only finds Python and calls
        python -m laptop_agents watchdog --restart-delay N -- <run arguments>
    Everything else (restarts, backoff, hang detection, exit codes) is the
    watchdog's; see `python -m laptop_agents watchdog --help`.

    Python: $env:PYTHON if set, else the active virtual environment
    ($env:VIRTUAL_ENV), else the project's .venv next to this script's folder,
    else `python` on the PATH.

.PARAMETER RestartDelay
    Seconds to wait before restarting a crashed or hung session (default 10).

.EXAMPLE
    scripts\watchdog.ps1 -RestartDelay 10 -- --source mock --duration 600

.NOTES
    Put `--` before the session's arguments so PowerShell passes them through
    untouched. The exit code is the watchdog's.
#>
[CmdletBinding(PositionalBinding = $false)]
param(
    [double]$RestartDelay = 10,
    [Parameter(ValueFromRemainingArguments = $true)]
    [string[]]$RunArgs = @()
)

$ErrorActionPreference = 'Stop'

function Find-Python {
    if ($env:PYTHON) { return $env:PYTHON }
    $candidates = @()
    if ($env:VIRTUAL_ENV) {
        $candidates += (Join-Path $env:VIRTUAL_ENV 'Scripts\python.exe')
        $candidates += (Join-Path $env:VIRTUAL_ENV 'bin/python')
    }
    $root = Split-Path -Parent $PSScriptRoot
    $candidates += (Join-Path $root '.venv\Scripts\python.exe')
    $candidates += (Join-Path $root '.venv/bin/python')
    foreach ($candidate in $candidates) {
        if (Test-Path -LiteralPath $candidate -PathType Leaf) { return $candidate }
    }
    return 'python'
}

if ($null -eq $RunArgs) { $RunArgs = @() }
if ($RunArgs.Count -gt 0 -and $RunArgs[0] -eq '--') {
    $RunArgs = @($RunArgs | Select-Object -Skip 1)
}

$python = Find-Python
# Invariant culture: a German locale would otherwise pass "0,5".
$delay = $RestartDelay.ToString([System.Globalization.CultureInfo]::InvariantCulture)
# '--' quoted: a bare -- would be eaten by PowerShell's own parser.
& $python -m laptop_agents watchdog --restart-delay $delay '--' @RunArgs
exit $LASTEXITCODE
